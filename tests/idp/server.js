// A real OpenID Connect provider (the certified `oidc-provider`) for FMW's sign-on tests.
//
//   node tests/idp/server.js config.json
//
// The config (written by tests/oidc_provider.py) holds the issuer, port, clients, users, signing
// keys and the API's audience. Access tokens are JWTs for that audience even when the client sends
// no `resource` parameter; the login page is a plain HTML form; consent is granted automatically.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider, { interactionPolicy } from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = cfg.users ?? {};
const audience = cfg.resource ?? 'fmw-api';
// RFC 8707 wants an absolute URI as the resource indicator; the audience may be any string.
const indicator = /^[a-z][a-z0-9+.-]*:/i.test(audience) ? audience : `urn:${audience}`;
const resourceScope = cfg.resource_scope ?? 'openid profile email groups';

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function account(sub) {
  const user = users[sub];
  if (!user) return undefined;
  return {
    accountId: sub,
    async claims() {
      return {
        sub, name: user.name, email: user.email, email_verified: true, groups: user.groups ?? [],
      };
    },
  };
}

// Streamlit's st.login sends prompt=select_account: it shows the login form even to a signed-in
// browser, so a test can sign in as someone else. First, so that consent follows the new account.
const policy = interactionPolicy.base();
policy.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);
const FORM_PROMPTS = new Set(['login', 'select_account']);

const provider = new Provider(cfg.issuer, {
  clients: (cfg.clients ?? []).map((c) => ({
    post_logout_redirect_uris: c.redirect_uris, ...c,
  })),
  jwks: cfg.jwks,
  findAccount: (ctx, sub) => account(sub),
  claims: {
    openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'], groups: ['groups'],
  },
  conformIdTokenClaims: false, // the claims go into the id_token itself, where st.user reads them
  async extraTokenClaims(ctx, token) {
    const user = token.kind === 'AccessToken' && users[token.accountId];
    return user ? { name: user.name, email: user.email, groups: user.groups ?? [] } : undefined;
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><title>Sign out</title><h1>Sign out?</h1>${form}
<button id="logout" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => indicator,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resource) {
        if (resource !== indicator) throw new Provider.errors.InvalidTarget();
        return {
          audience, scope: resourceScope, accessTokenFormat: 'jwt',
          accessTokenTTL: cfg.access_token_ttl ?? 600,
        };
      },
    },
  },
  interactions: { policy },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  ttl: {
    AccessToken: cfg.access_token_ttl ?? 600,
    IdToken: cfg.id_token_ttl ?? 600,
    Interaction: 600, Session: 3600, Grant: 3600, AuthorizationCode: 60,
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

function loginPage(uid, error = '') {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign in</title></head><body>
<h1>Sign in</h1>${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}" autocomplete="off">
<label>User <input name="login" autofocus></label>
<label>Password <input name="password" type="password"></label>
<button id="submit" type="submit">Sign in</button>
</form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Consent (and any other prompt but the form's) is granted at once: first-party test clients.
async function autoResolve(details) {
  const { prompt, params, session, grantId } = details;
  if (prompt.name !== 'consent') return { [prompt.name]: {} };
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }
  return { consent: { grantId: await grant.save() } };
}

async function finish(ctx, result) {
  ctx.status = 303;
  ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result));
}

provider.use(async (ctx, next) => {
  const started = Date.now();
  try {
    await next();
  } finally {
    console.error(`${ctx.method} ${ctx.path} ${ctx.status} ${Date.now() - started}ms`);
  }
});

provider.use(async (ctx, next) => {
  if (!/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  ctx.set('cache-control', 'no-store');
  if (!FORM_PROMPTS.has(details.prompt.name)) {
    return finish(ctx, await autoResolve(details));
  }
  if (ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = loginPage(details.uid);
    return undefined;
  }
  if (ctx.method !== 'POST') return next();
  const form = await readForm(ctx.req);
  const sub = form.get('login') ?? '';
  if (!Object.hasOwn(users, sub) || users[sub].password !== form.get('password')) {
    ctx.status = 200;
    ctx.type = 'html';
    ctx.body = loginPage(details.uid, 'Wrong user name or password.');
    return undefined;
  }
  return finish(ctx, { [details.prompt.name]: {}, login: { accountId: sub } });
});

const server = provider.listen(cfg.port, cfg.host ?? '127.0.0.1', () => {
  console.error(`oidc-provider listening on ${cfg.issuer}`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
