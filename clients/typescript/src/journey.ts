// A frontend's journey through idlog with the client generated from api/openapi.yaml:
// sign up, sign in, read /users/me, sign out, and see the token refused afterwards.
// Run: IDLOG_URL=http://127.0.0.1:8080 npm run journey. Exits non-zero at the first surprise.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type User = components["schemas"]["User"];

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

// Sign-in: an access token bound to a new session.
let accessToken: string;
{
  const r = await client.POST("/api/v2/identity/sessions", { body: { login: email, password } });
  check(r.response.status === 200 && r.data, "sign-in answers 200", seen(r));
  check(r.data.token_type === "Bearer" && r.data.access_token.length > 0, "sign-in gives a bearer access token", r.data.token_type);
  check(r.data.expires_in > 0 && Date.parse(r.data.expires_at) > Date.now(), "the token expires in the future", r.data.expires_at);
  check(r.data.user.uid === user.uid, "sign-in names the same user", r.data.user.uid);
  accessToken = r.data.access_token;
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

// REFRESH: once the session work of issue 17 documents it, trade the refresh token for a new
// access token here, check that the old refresh token is refused, and sign out with the new one.

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
