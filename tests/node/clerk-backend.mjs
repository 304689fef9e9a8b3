// Proof that the official @clerk/backend SDK works against Keel's idp.
//
// Run by crates/idp/tests/clerk_backend_node.rs with:
//   IDP_URL     the idp's URL (used as CLERK_API_URL)
//   SECRET_KEY  the idp's sk_test_… secret key
//   SESSION_ID  an active session
// Prints one JSON line: the claims of a `convex` template token minted through
// clerkClient.sessions.getToken, and of a session token verified by verifyToken through the
// idp's GET /v1/jwks. Errors are printed as { error } with exit code 1.
import { createClerkClient, verifyToken } from '@clerk/backend';

const { IDP_URL: apiUrl, SECRET_KEY: secretKey, SESSION_ID: sessionId } = process.env;

function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

try {
  const clerkClient = createClerkClient({ secretKey, apiUrl });

  // Template token through POST /v1/sessions/{sid}/tokens/convex.
  const convex = await clerkClient.sessions.getToken(sessionId, 'convex');
  // The same template token verified through the JWKS (audience checked).
  const convexVerified = await verifyToken(convex.jwt, { secretKey, apiUrl, audience: 'convex' });

  // A session token (POST /v1/sessions/{sid}/tokens), verified through GET /v1/jwks.
  const session = await clerkClient.sessions.getToken(sessionId);
  const sessionVerified = await verifyToken(session.jwt, { secretKey, apiUrl });

  // A tampered token must be rejected by the SDK.
  const parts = session.jwt.split('.');
  const forged = claimsOf(session.jwt);
  forged.sub = 'user_forged';
  const tampered = [parts[0], Buffer.from(JSON.stringify(forged)).toString('base64url'), parts[2]].join('.');
  let tamperedRejected = false;
  try {
    await verifyToken(tampered, { secretKey, apiUrl });
  } catch {
    tamperedRejected = true;
  }

  const sessionObject = await clerkClient.sessions.getSession(sessionId);

  console.log(JSON.stringify({
    convexClaims: claimsOf(convex.jwt),
    convexVerified,
    sessionVerified,
    tamperedRejected,
    sessionStatus: sessionObject.status,
  }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error), errors: error?.errors }));
  process.exit(1);
}
