// A relying party built on `openid-client` (panva, the reference certified OpenID Connect client for
// Node.js), run by tests/e2e/test_openid_client.py against a live Socle server.
//
// It plays the application; the Python test plays the person in the browser. Protocol: one JSON
// object per line. The script prints {"step": "authorize", "url": …}; the test logs in and writes
// back the full callback URL on stdin; the script finishes the flow and prints {"step": "done", …}.
// Every check that openid-client makes (issuer, `iss` parameter, state, PKCE, ID token signature,
// audience, nonce, `at_hash`-less code flow, userinfo `sub`) is the library's, not ours.
//
// Environment: ISSUER (http://127.0.0.1:PORT), CLIENT_ID, REDIRECT_URI, SCOPE, FHIR_BASE.

import { createInterface } from 'node:readline';
import * as client from 'openid-client';

const { ISSUER, CLIENT_ID, REDIRECT_URI, SCOPE, FHIR_BASE } = process.env;
const say = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function readLine() {
  const { value, done } = await lines.next();
  if (done) throw new Error('stdin closed before the callback URL arrived');
  return value.trim();
}

// The test server speaks plain HTTP on 127.0.0.1; openid-client refuses that unless told.
const insecure = { execute: [client.allowInsecureRequests] };

async function refusal(promise) {
  try {
    await promise;
    return 'accepted';
  } catch (error) {
    return error.error ?? error.code ?? String(error);
  }
}

async function main() {
  // 1. Discovery (/.well-known/openid-configuration), public client: PKCE, no secret.
  const config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined, client.None(), insecure);
  const metadata = config.serverMetadata();

  // 2. Authorization request with PKCE S256, state and nonce.
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  say({ step: 'authorize', url: url.href, issuer: metadata.issuer, pkce: metadata.code_challenge_methods_supported });

  // 3. Code exchange: openid-client validates the callback, the token response and the ID token.
  const callback = new URL(await readLine());
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const idClaims = tokens.claims();

  // 4. The access token on the FHIR API.
  const fhir = await client.fetchProtectedResource(
    config,
    tokens.access_token,
    new URL(`${FHIR_BASE}/Patient?_count=1`),
    'GET',
  );
  const fhirBody = await fhir.json();
  const anonymous = await fetch(`${FHIR_BASE}/Patient?_count=1`);

  // 5. Refresh (rotation), then userinfo with the new access token (sub checked by the library).
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const userinfo = await client.fetchUserInfo(config, refreshed.access_token, idClaims.sub);

  // 6. The first refresh token was rotated: presenting it again is reuse, refused, and it revokes
  //    the whole family, so the refresh token just obtained is refused too.
  const reuse = await refusal(client.refreshTokenGrant(config, tokens.refresh_token));
  const afterReuse = await refusal(client.refreshTokenGrant(config, refreshed.refresh_token));
  // …and the access tokens of the family: the FHIR API refuses them once its revocation cache
  // (at most 2 s old) has caught up.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  // openid-client turns the 401 challenge into a WWWAuthenticateChallengeError.
  let revoked;
  try {
    const answer = await client.fetchProtectedResource(
      config,
      refreshed.access_token,
      new URL(`${FHIR_BASE}/Patient?_count=1`),
      'GET',
    );
    revoked = { status: answer.status };
  } catch (error) {
    revoked = { status: error.response?.status, challenge: error.cause?.[0]?.parameters?.error };
  }

  say({
    step: 'done',
    id_token: idClaims,
    token_type: tokens.token_type,
    scope: tokens.scope,
    has_refresh_token: typeof tokens.refresh_token === 'string',
    fhir_status: fhir.status,
    fhir_resource_type: fhirBody.resourceType,
    anonymous_status: anonymous.status,
    anonymous_challenge: anonymous.headers.get('www-authenticate'),
    refreshed_rotated: refreshed.refresh_token !== tokens.refresh_token,
    refreshed_access_differs: refreshed.access_token !== tokens.access_token,
    userinfo,
    reuse,
    after_reuse: afterReuse,
    revoked,
  });
}

main().then(() => process.exit(0), (error) => {
  say({ step: 'error', error: String(error), cause: error.cause ? String(JSON.stringify(error.cause)) : null });
  process.exit(1);
});
