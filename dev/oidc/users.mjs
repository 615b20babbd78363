// Demo users for the Authentik-shaped dev OIDC provider (dev/oidc/server.mjs).
//
// Add a user by appending an entry. `sub` is derived from the username the way
// Authentik's default "hashed user ID" subject mode yields an opaque, stable hex
// string; set `sub` explicitly on an entry to pin a different value.
import { createHash } from 'node:crypto';

export function hashedSub(username) {
  return createHash('sha256').update(`authentik-dev:user:${username}`).digest('hex');
}

const DEMO_USERS = [
  {
    username: 'olivia',
    password: 'olivia-demo',
    name: 'Olivia Operator',
    email: 'olivia@ops.example',
    groups: ['portal-operators'],
  },
  {
    username: 'alice',
    password: 'alice-demo',
    name: 'Alice Admin',
    email: 'alice@acme.example',
    groups: ['tenant:acme:admin'],
  },
  {
    username: 'bob',
    password: 'bob-demo',
    name: 'Bob Member',
    email: 'bob@acme.example',
    groups: ['tenant:acme:member'],
  },
  {
    username: 'gina',
    password: 'gina-demo',
    name: 'Gina Globex',
    email: 'gina@globex.example',
    groups: ['tenant:globex:admin'],
  },
  {
    username: 'carol',
    password: 'carol-demo',
    name: 'Carol Both',
    email: 'carol@multi.example',
    groups: ['tenant:acme:network_admin', 'tenant:globex:auditor'],
  },
  {
    username: 'bill',
    password: 'bill-demo',
    name: 'Bill Billing',
    email: 'bill@acme.example',
    groups: ['tenant:acme:billing_admin'],
  },
  {
    // In no tenant group: joins a tenant only by a portal invitation (docs/members.md).
    username: 'newbie',
    password: 'newbie-demo',
    name: 'Nora Newbie',
    email: 'newbie@acme.example',
    groups: [],
  },
];

/** Users with `sub` and `email_verified` filled in. */
export const users = DEMO_USERS.map((u) => ({
  email_verified: true,
  ...u,
  sub: u.sub ?? hashedSub(u.username),
}));

export function findUserByUsername(username) {
  return users.find((u) => u.username === username);
}

export function findUserBySub(sub) {
  return users.find((u) => u.sub === sub);
}

/** Username/password check; returns the user or undefined. */
export function authenticate(username, password) {
  const user = findUserByUsername(String(username ?? '').trim());
  if (!user || typeof password !== 'string' || user.password !== password) return undefined;
  return user;
}

/** OIDC claims as Authentik's default scope mappings emit them. */
export function claimsFor(user) {
  return {
    sub: user.sub,
    email: user.email,
    email_verified: user.email_verified,
    name: user.name,
    given_name: user.name,
    preferred_username: user.username,
    nickname: user.username,
    groups: [...user.groups],
  };
}
