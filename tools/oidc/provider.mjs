// A real OpenID Provider for hotfixd's SSO tests: panva's oidc-provider
// (OpenID Certified), not one written here. It serves discovery, JWKS, the
// device authorization grant (RFC 8628) with its own sign-in and consent
// pages (oidc-provider's development interactions: any password), ID
// tokens carrying `preferred_username` and `groups`, and refresh tokens.
//
//   node provider.mjs '<config JSON>'
//
// config: {
//   "port": 0,                       // 0: a free one
//   "keys": "DIR", "kids": ["k1"],   // signing keys, RSA, made once per kid
//                                    // in DIR and reused: start again with
//                                    // other kids to rotate
//   "clients": [{"client_id": "hotfixctl"}],
//   "accounts": {"alice": ["sre"]},  // login -> groups
//   "id_token_ttl": 3600
// }
//
// Prints one JSON line once listening: {"issuer": "http://127.0.0.1:PORT"}.
import { generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Provider from "oidc-provider";

const cfg = JSON.parse(process.argv[2] || "{}");
const accounts = cfg.accounts || {};

// Each kid's key as a JWK (for the provider) and as PEM (`KID.pem`, for a
// test that plays the IdP signing a token it would not: expired, for
// another audience).
function key(kid) {
  const path = join(cfg.keys, `${kid}.jwk.json`);
  if (!existsSync(path)) {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
    writeFileSync(path, JSON.stringify(jwk), { mode: 0o600 });
    writeFileSync(join(cfg.keys, `${kid}.pem`), privateKey.export({ format: "pem", type: "pkcs8" }), {
      mode: 0o600,
    });
  }
  return JSON.parse(readFileSync(path, "utf8"));
}

const DEVICE = "urn:ietf:params:oauth:grant-type:device_code";
const start = (port, issuer) => {
  const provider = new Provider(issuer, {
    clients: (cfg.clients || []).map((c) => ({
      grant_types: [DEVICE, "refresh_token"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "none",
      ...c,
    })),
    jwks: { keys: (cfg.kids || ["k1"]).map(key) },
    features: {
      deviceFlow: { enabled: true },
      devInteractions: { enabled: true },
      revocation: { enabled: true },
    },
    scopes: ["openid", "offline_access", "profile", "groups"],
    claims: { openid: ["sub"], profile: ["preferred_username"], groups: ["groups"] },
    // The ID token carries the claims (hotfixd reads them there).
    conformIdTokenClaims: false,
    async findAccount(_ctx, id) {
      if (!(id in accounts)) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, preferred_username: id, groups: accounts[id] };
        },
      };
    },
    ttl: {
      IdToken: cfg.id_token_ttl || 3600,
      AccessToken: 3600,
      DeviceCode: 600,
      RefreshToken: 86400,
      Grant: 86400,
      Interaction: 600,
      Session: 86400,
    },
    // Every client here is the CLI of one organization: a refresh token
    // whenever offline_access was asked for.
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed("refresh_token") && code.scopes.has("offline_access");
    },
  });
  provider.proxy = false;
  const server = provider.listen(port, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ issuer }) + "\n");
  });
  return server;
};

if (cfg.port) {
  start(cfg.port, `http://127.0.0.1:${cfg.port}`);
} else {
  // A free port first, so that the issuer names it.
  const { createServer } = await import("node:net");
  const probe = createServer();
  probe.listen(0, "127.0.0.1", () => {
    const { port } = probe.address();
    probe.close(() => start(port, `http://127.0.0.1:${port}`));
  });
}
