// A frontend's journey through idlog with the client generated from api/openapi.yaml:
// sign up, sign in, read /users/me, refresh the session, list the sessions, see a stolen refresh
// token end the session, sign in again, sign out, and see the token refused afterwards.
// Run: IDLOG_URL=http://127.0.0.1:8080 npm run journey. Exits non-zero at the first surprise.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type User = components["schemas"]["User"];

// bearerOf is a sign-in or refresh answer if it is a bearer session's (the journey asks for no
// cookies); a cookie session's has its tokens in cookies instead.
function bearerOf<T extends object>(data: T | undefined): Extract<T, { access_token: string }> | undefined {
  return data && "access_token" in data ? (data as Extract<T, { access_token: string }>) : undefined;
}

const baseUrl = process.env.IDLOG_URL;
if (!baseUrl) {
  throw new Error("set IDLOG_URL to the server, e.g. http://127.0.0.1:8080");
}
const client = createClient<paths>({ baseUrl });

// check stops the journey unless ok; got is what came instead.
function check(ok: unknown, what: string, got?: unknown): asserts ok {
  if (!ok) {
    throw new Error(`journey: want ${what}, got ${JSON.stringify(got)}`);
  }
  console.log(`ok   ${what}`);
}

// seen is what a failed check shows of an answer.
const seen = (r: { response: Response; error?: unknown }) => ({ status: r.response.status, error: r.error });

const email = `journey-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = "correct horse battery staple";

// What a frontend reads before showing the forms.
{
  const r = await client.GET("/api/v2/identity/configs");
  check(r.response.status === 200 && r.data, "GET configs answers 200", seen(r));
  check(r.data.password_min_length > 0, "configs give the password's minimum length", r.data);
}

// Sign-up: 201 with the new user.
let user: User;
{
  const r = await client.POST("/api/v2/identity/users", { body: { email, password } });
  check(r.response.status === 201 && r.data, "sign-up answers 201", seen(r));
  check(/^ID[0-9A-F]{10}$/.test(r.data.uid), "sign-up gives a Barong uid", r.data.uid);
  check(r.data.email === email && !r.data.email_verified, "the new user has the address, not yet verified", r.data);
  user = r.data;
}

// The same address again: a typed error with a stable code.
{
  const r = await client.POST("/api/v2/identity/users", { body: { email, password } });
  check(r.response.status === 409 && r.error?.errors.includes("identity.user.email_taken"),
    "a second sign-up answers 409 identity.user.email_taken", seen(r));
}

// A wrong password: 401 identity.session.invalid_params.
{
  const r = await client.POST("/api/v2/identity/sessions", {
    body: { login: email, password: "not the password at all" },
  });
  check(r.response.status === 401 && r.error?.errors.includes("identity.session.invalid_params"),
    "a wrong password answers 401 identity.session.invalid_params", seen(r));
}

// Sign-in: an access token and a refresh token bound to a new session.
let accessToken: string;
let refreshToken: string;
{
  const r = await client.POST("/api/v2/identity/sessions", { body: { login: email, password } });
  const s = bearerOf(r.data);
  check(r.response.status === 200 && s, "sign-in answers 200 with a bearer session", seen(r));
  check(s.token_type === "Bearer" && s.access_token.length > 0, "sign-in gives a bearer access token", s.token_type);
  check(s.expires_in > 0 && Date.parse(s.expires_at) > Date.now(), "the token expires in the future", s.expires_at);
  check(s.refresh_token.length > 0 && Date.parse(s.session_expires_at) > Date.now(),
    "sign-in gives a refresh token and when the session ends", s.session_expires_at);
  check(s.user.uid === user.uid, "sign-in names the same user", s.user.uid);
  accessToken = s.access_token;
  refreshToken = s.refresh_token;
}
const bearer = () => ({ Authorization: `Bearer ${accessToken}` });

// The signed-in user.
{
  const r = await client.GET("/api/v2/resource/users/me", { headers: bearer() });
  check(r.response.status === 200 && r.data, "GET /users/me answers 200", seen(r));
  check(r.data.uid === user.uid && r.data.email === email, "/users/me is the user who signed in", r.data);
  check(Array.isArray(r.data.labels) && typeof r.data.wallet_free === "number", "/users/me carries labels and balances", r.data);
}

// Without a token: 401 authz.missing_token.
{
  const r = await client.GET("/api/v2/resource/users/me");
  check(r.response.status === 401 && r.error?.errors.includes("authz.missing_token"),
    "/users/me without a token answers 401 authz.missing_token", seen(r));
}

// Refresh: the refresh token buys a new access token and is rotated: the one sent is spent.
const spentRefreshToken = refreshToken;
{
  const r = await client.POST("/api/v2/identity/sessions/refresh", { body: { refresh_token: refreshToken } });
  const s = bearerOf(r.data);
  check(r.response.status === 200 && s, "refresh answers 200 with new bearer tokens", seen(r));
  check(s.token_type === "Bearer" && s.expires_in > 0 && s.access_token.length > 0, "refresh gives an access token", s);
  check(s.refresh_token.length > 0 && s.refresh_token !== spentRefreshToken, "refresh rotates the refresh token", s.refresh_token);
  check(Date.parse(s.session_expires_at) > Date.now(), "the refreshed session ends in the future", s.session_expires_at);
  accessToken = s.access_token;
  refreshToken = s.refresh_token;
}
{
  const r = await client.GET("/api/v2/resource/users/me", { headers: bearer() });
  check(r.response.status === 200 && r.data?.uid === user.uid, "the refreshed access token reads /users/me", seen(r));
}

// The session list: this one session, marked current, a bearer one.
{
  const r = await client.GET("/api/v2/resource/sessions", { headers: bearer() });
  check(r.response.status === 200 && r.data, "GET /resource/sessions answers 200", seen(r));
  const only = r.data[0];
  check(r.data.length === 1 && only && only.current && !only.cookie && only.id.length > 0,
    "the list holds the one session, current and bearer", r.data);
  check(Date.parse(only.last_seen_at) >= Date.parse(only.started_at) && Date.parse(only.expires_at) > Date.now(),
    "the session was seen after it started and ends in the future", only);
}

// The spent refresh token again, as a thief would send it: refused, and the whole session ends,
// so the access and refresh tokens the rightful refresh gave stop working too.
{
  const r = await client.POST("/api/v2/identity/sessions/refresh", { body: { refresh_token: spentRefreshToken } });
  check(r.response.status === 401 && r.error?.errors.includes("identity.session.refresh_token_reused"),
    "a spent refresh token answers 401 identity.session.refresh_token_reused", seen(r));
}
{
  const r = await client.GET("/api/v2/resource/users/me", { headers: bearer() });
  check(r.response.status === 401 && r.error?.errors.includes("authz.invalid_session"),
    "after the reuse the new access token answers 401 authz.invalid_session", seen(r));
}
{
  const r = await client.POST("/api/v2/identity/sessions/refresh", { body: { refresh_token: refreshToken } });
  check(r.response.status === 401 && r.error?.errors.includes("identity.session.invalid_refresh_token"),
    "after the reuse the new refresh token answers 401 identity.session.invalid_refresh_token", seen(r));
}

// Sign in again, for the sign-out.
{
  const r = await client.POST("/api/v2/identity/sessions", { body: { login: email, password } });
  const s = bearerOf(r.data);
  check(r.response.status === 200 && s, "a second sign-in answers 200", seen(r));
  accessToken = s.access_token;
}

// Sign-out ends the session: the token stops working at once.
{
  const r = await client.DELETE("/api/v2/identity/sessions", { headers: bearer() });
  check(r.response.status === 204, "sign-out answers 204", seen(r));
}
{
  const r = await client.GET("/api/v2/resource/users/me", { headers: bearer() });
  check(r.response.status === 401 && r.error?.errors.includes("authz.invalid_session"),
    "after sign-out the token answers 401 authz.invalid_session", seen(r));
}

console.log("journey complete");
