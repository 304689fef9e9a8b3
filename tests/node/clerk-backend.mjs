// Proof that the official @clerk/backend SDK works against Keel's idp.
//
// Run by crates/idp/tests/clerk_backend_node.rs with:
//   IDP_URL     the idp's URL (used as CLERK_API_URL)
//   SECRET_KEY  the idp's sk_test_… secret key
//   SESSION_ID  an active session
//   USER_ID     its user
// Prints one JSON line: the claims of a `convex` template token minted through
// clerkClient.sessions.getToken, and of a session token verified by verifyToken through the
// idp's GET /v1/jwks; and the idp's refusals as the SDK reports them (a breached password at
// users.createUser, throttled guesses at users.verifyPassword). Errors are printed as { error }
// with exit code 1.
import { createClerkClient, verifyToken } from '@clerk/backend';

const { IDP_URL: apiUrl, SECRET_KEY: secretKey, SESSION_ID: sessionId, USER_ID: userId } = process.env;

/** The parts of a ClerkAPIResponseError a caller acts on. */
function refusal(error) {
  const first = error?.errors?.[0];
  return { status: error?.status, code: first?.code, paramName: first?.meta?.paramName, retryAfter: error?.retryAfter };
}

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

  // A breached password is refused with Clerk's code, naming the parameter.
  let pwned = null;
  try {
    await clerkClient.users.createUser({ emailAddress: ['pwned@example.com'], password: 'password' });
  } catch (error) {
    pwned = refusal(error);
  }
  // Guessing a password is slowed with 429s the SDK reads Retry-After from.
  let throttled = null;
  for (let i = 0; i < 12 && throttled === null; i++) {
    try {
      await clerkClient.users.verifyPassword({ userId, password: `wrong guess ${i}` });
    } catch (error) {
      if (error?.status === 429) throttled = { ...refusal(error), after: i };
    }
  }

  console.log(JSON.stringify({
    convexClaims: claimsOf(convex.jwt),
    convexVerified,
    sessionVerified,
    tamperedRejected,
    sessionStatus: sessionObject.status,
    pwned,
    throttled,
  }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error), errors: error?.errors }));
  process.exit(1);
}
