// Proof that Clerk's official packages work with the idp's JWT templates and webhooks.
//
// Run by crates/idp/tests/clerk_templates_webhooks_node.rs:
// 1. starts a webhook receiver on 127.0.0.1:0 and prints `receiver: <url>`;
// 2. reads one JSON line on stdin: { idpUrl, secretKey, webhookSecret } (the idp now sends
//    its webhooks to the receiver);
// 3. through @clerk/backend: creates a user and a session, manages a JWT template
//    (jwtTemplates.create / list / get / update / delete), mints template tokens with
//    sessions.getToken and verifies them with verifyToken, and records the SDK's refusals;
// 4. waits (deadline 30 s) for the webhooks (user.created, session.created): each is verified with the `standardwebhooks`
//    package and with @clerk/backend's verifyWebhook; the first delivery is answered 500, so
//    it must come again with the same svix-id;
// 5. prints one JSON line with what it saw. Errors: { error } and exit code 1.
import http from 'node:http';
import readline from 'node:readline';
import { createClerkClient, verifyToken } from '@clerk/backend';
import { verifyWebhook } from '@clerk/backend/webhooks';
import { Webhook } from 'standardwebhooks';

function refusal(error) {
  const first = error?.errors?.[0];
  return { status: error?.status, code: first?.code, paramName: first?.meta?.paramName };
}

const deliveries = [];
let secret = null;
let waiter = null;

const server = http.createServer((request, response) => {
  const chunks = [];
  request.on('data', (c) => chunks.push(c));
  request.on('end', async () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const headers = {
      'webhook-id': request.headers['svix-id'],
      'webhook-timestamp': request.headers['svix-timestamp'],
      'webhook-signature': request.headers['svix-signature'],
    };
    const record = { svixId: request.headers['svix-id'], standard: false, clerk: false, tamperedRejected: false };
    try {
      const event = new Webhook(secret).verify(body, headers);
      record.standard = true;
      record.type = event.type;
      record.data = event.data;
      record.instanceId = event.instance_id;
    } catch (e) {
      record.standardError = String(e);
    }
    try {
      const fetchRequest = new Request('http://receiver/hook', {
        method: 'POST',
        headers: {
          'svix-id': request.headers['svix-id'] ?? '',
          'svix-timestamp': request.headers['svix-timestamp'] ?? '',
          'svix-signature': request.headers['svix-signature'] ?? '',
        },
        body,
      });
      const event = await verifyWebhook(fetchRequest, { signingSecret: secret });
      record.clerk = event.type === record.type;
    } catch (e) {
      record.clerkError = String(e);
    }
    try {
      new Webhook(secret).verify(body.replace('"object"', '"objekt"'), headers);
    } catch {
      record.tamperedRejected = true;
    }
    deliveries.push(record);
    // The very first delivery fails: the idp must retry it.
    response.statusCode = deliveries.length === 1 ? 500 : 200;
    response.end();
    waiter?.();
  });
});

async function waitFor(predicate, what) {
  const deadline = Date.now() + 30_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(deliveries)}`);
    await new Promise((resolve) => {
      waiter = resolve;
      setTimeout(resolve, 250);
    });
  }
}

try {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  console.log(`receiver: http://127.0.0.1:${server.address().port}/hook`);
  const lines = readline.createInterface({ input: process.stdin });
  const config = JSON.parse(await new Promise((resolve) => lines.once('line', resolve)));
  lines.close();
  secret = config.webhookSecret;
  const { idpUrl: apiUrl, secretKey } = config;
  const clerk = createClerkClient({ secretKey, apiUrl });

  const user = await clerk.users.createUser({
    emailAddress: ['templates@example.com'],
    firstName: 'Tem',
    publicMetadata: { role: 'admin', plan: { seats: 3 } },
  });
  const session = await clerk.sessions.createSession({ userId: user.id });

  const created = await clerk.jwtTemplates.create({
    name: 'supabase',
    claims: {
      aud: 'authenticated',
      role: '{{user.public_metadata.role}}',
      seats: '{{user.public_metadata.plan.seats}}',
      email: '{{user.primary_email_address}}',
      display: '{{user.first_name}} ({{user.public_metadata.role || \'member\'}})',
    },
    lifetime: 120,
    allowedClockSkew: 10,
  });
  const listed = await clerk.jwtTemplates.list();
  const got = await clerk.jwtTemplates.get(created.id);
  const token = await clerk.sessions.getToken(session.id, 'supabase');
  const verified = await verifyToken(token.jwt, { secretKey, apiUrl, audience: 'authenticated' });

  const updated = await clerk.jwtTemplates.update({
    templateId: created.id,
    name: 'supabase',
    claims: { aud: 'authenticated', role: '{{user.public_metadata.role}}', v: 2 },
    lifetime: 300,
  });
  const updatedToken = await clerk.sessions.getToken(session.id, 'supabase');
  const updatedVerified = await verifyToken(updatedToken.jwt, { secretKey, apiUrl, audience: 'authenticated' });

  const refusals = {};
  for (const [name, params] of Object.entries({
    reserved: { name: 'bad', claims: { sub: '{{user.id}}' } },
    shortcode: { name: 'bad', claims: { role: '{{user.public_metadata.role' } },
    lifetime: { name: 'bad', claims: {}, lifetime: 1 },
  })) {
    try {
      await clerk.jwtTemplates.create(params);
      refusals[name] = 'accepted';
    } catch (error) {
      refusals[name] = refusal(error);
    }
  }
  try {
    await clerk.sessions.getToken(session.id, 'no-such-template');
    refusals.unknownTemplate = 'accepted';
  } catch (error) {
    refusals.unknownTemplate = refusal(error);
  }
  const deleted = await clerk.jwtTemplates.delete(created.id);
  const afterDelete = await clerk.jwtTemplates.list();

  await waitFor(
    () =>
      deliveries.some((d) => d.type === 'user.created') &&
      deliveries.some((d) => d.type === 'session.created') &&
      deliveries.filter((d) => d.svixId === deliveries[0].svixId).length >= 2,
    'user.created, session.created and the retry of the first delivery',
  );
  server.close();

  console.log(JSON.stringify({
    userId: user.id,
    sessionId: session.id,
    template: { id: created.id, name: created.name, lifetime: created.lifetime, allowedClockSkew: created.allowedClockSkew, claims: created.claims },
    listed: { totalCount: listed.totalCount, names: listed.data.map((t) => t.name) },
    got: { name: got.name },
    verified,
    updated: { lifetime: updated.lifetime },
    updatedVerified,
    refusals,
    deleted: { deleted: deleted.deleted },
    afterDelete: afterDelete.data.map((t) => t.name),
    deliveries,
  }));
  process.exit(0);
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error), details: error?.errors ?? null }));
  process.exit(1);
}
