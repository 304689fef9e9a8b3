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

  // User management: update, metadata deep merge, list with filters, count, sessions, delete.
  const updated = await clerkClient.users.updateUser(userId, { firstName: 'Renamed', lastName: 'Person' });
  await clerkClient.users.updateUserMetadata(userId, { publicMetadata: { role: 'admin', prefs: { theme: 'dark', lang: 'en' } } });
  const merged = await clerkClient.users.updateUserMetadata(userId, {
    publicMetadata: { prefs: { lang: null, tz: 'UTC' } },
    privateMetadata: { plan: 'pro' },
  });
  const extra = [];
  for (const name of ['list-a', 'list-b', 'list-c']) {
    extra.push(await clerkClient.users.createUser({ emailAddress: [`${name}@example.com`], firstName: name, skipPasswordRequirement: true }));
  }
  const byEmail = await clerkClient.users.getUserList({ emailAddress: ['list-a@example.com', 'list-c@example.com'] });
  const byId = await clerkClient.users.getUserList({ userId: [extra[1].id] });
  const ordered = await clerkClient.users.getUserList({ orderBy: '+created_at', limit: 2, offset: 1 });
  const searched = await clerkClient.users.getUserList({ query: 'list-' });
  const count = await clerkClient.users.getCount();
  const sessionList = await clerkClient.sessions.getSessionList({ userId, status: 'active' });
  const deletedSession = await clerkClient.sessions.createSession({ userId: extra[0].id });
  const deleted = await clerkClient.users.deleteUser(extra[0].id);
  let deletedSessionToken = null;
  try {
    await clerkClient.sessions.getToken(deletedSession.id);
    deletedSessionToken = 'minted';
  } catch (error) {
    deletedSessionToken = refusal(error);
  }
  const countAfterDelete = await clerkClient.users.getCount();
  let missingUser = null;
  try {
    await clerkClient.users.updateUser('user_missing', { firstName: 'x' });
  } catch (error) {
    missingUser = refusal(error);
  }
  const management = {
    updated: { firstName: updated.firstName, lastName: updated.lastName },
    merged: { publicMetadata: merged.publicMetadata, privateMetadata: merged.privateMetadata },
    byEmail: { totalCount: byEmail.totalCount, emails: byEmail.data.map((u) => u.primaryEmailAddress?.emailAddress).sort() },
    byId: byId.data.map((u) => u.firstName),
    ordered: { totalCount: ordered.totalCount, names: ordered.data.map((u) => u.firstName) },
    searched: { totalCount: searched.totalCount, names: searched.data.map((u) => u.firstName).sort() },
    count,
    sessionList: { totalCount: sessionList.totalCount, ids: sessionList.data.map((s) => s.id), statuses: sessionList.data.map((s) => s.status) },
    deleted: { id: deleted.id, deleted: deleted.deleted },
    deletedSessionToken,
    countAfterDelete,
    missingUser,
  };

  console.log(JSON.stringify({
    management,
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
