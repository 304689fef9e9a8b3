// Proof that the official @clerk/backend SDK's second-factor calls work against Keel's idp.
//
// Run by crates/idp/tests/second_factor.rs with:
//   IDP_URL      the idp's URL (used as CLERK_API_URL)
//   SECRET_KEY   the idp's sk_test_… secret key
//   USER_ID      a user with an authenticator app turned on
//   TOTP_CODE    a code the app shows now (not used yet)
//   WRONG_CODE   a 6-digit code the app does not show
//   BACKUP_CODE  one of the user's unused backup codes
// Prints one JSON line: the user's flags before and after users.disableUserMFA, the answers of
// users.verifyTOTP for the app's code and the backup code, and its refusals (a wrong code, the
// same code again) as the SDK reports them. Errors are printed as { error } with exit code 1.
import { createClerkClient } from '@clerk/backend';

const { IDP_URL: apiUrl, SECRET_KEY: secretKey, USER_ID: userId } = process.env;
const { TOTP_CODE: totpCode, WRONG_CODE: wrongCode, BACKUP_CODE: backupCode } = process.env;

/** The parts of a ClerkAPIResponseError a caller acts on. */
function refusal(error) {
  const first = error?.errors?.[0];
  return { status: error?.status, code: first?.code, paramName: first?.meta?.paramName };
}

async function refused(call) {
  try {
    await call();
    return null;
  } catch (error) {
    return refusal(error);
  }
}

const flags = (u) => ({ twoFactorEnabled: u.twoFactorEnabled, totpEnabled: u.totpEnabled, backupCodeEnabled: u.backupCodeEnabled });

try {
  const clerkClient = createClerkClient({ secretKey, apiUrl });
  const before = flags(await clerkClient.users.getUser(userId));
  const wrong = await refused(() => clerkClient.users.verifyTOTP({ userId, code: wrongCode }));
  const totp = await clerkClient.users.verifyTOTP({ userId, code: totpCode });
  const replayed = await refused(() => clerkClient.users.verifyTOTP({ userId, code: totpCode }));
  const backup = await clerkClient.users.verifyTOTP({ userId, code: backupCode });
  await clerkClient.users.disableUserMFA(userId);
  const after = flags(await clerkClient.users.getUser(userId));
  console.log(JSON.stringify({ before, wrong, totp, replayed, backup, after }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error), details: refusal(error) }));
  process.exit(1);
}
