// Unbounded in-memory storage adapter for oidc-provider (dev/test only).
//
// oidc-provider's built-in MemoryAdapter keeps at most ~1000-2000 entries per
// provider in an LRU, so a long test run could see live sessions evicted. This
// one keeps everything until it expires; a timer sweeps expired entries.
// Each call to createMemoryAdapter() gets its own store (one per provider).

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

class Store {
  #map = new Map(); // key -> { value, expiresAt }

  constructor(sweepMs = 60_000) {
    this.timer = setInterval(() => this.sweep(), sweepMs);
    this.timer.unref();
  }

  get(key) {
    const entry = this.#map.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#map.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key, value, expiresInSec) {
    const expiresAt = typeof expiresInSec === 'number' ? Date.now() + expiresInSec * 1000 : Infinity;
    this.#map.set(key, { value, expiresAt });
  }

  delete(key) {
    this.#map.delete(key);
  }

  sweep() {
    const now = Date.now();
    for (const [key, entry] of this.#map) {
      if (entry.expiresAt <= now) this.#map.delete(key);
    }
  }
}

export function createMemoryAdapter({ clockTolerance = 0 } = {}) {
  const store = new Store();
  const grantKey = (id) => `grant:${id}`;
  const uidKey = (uid) => `sessionUid:${uid}`;
  const userCodeKey = (code) => `userCode:${code}`;

  return class DevMemoryAdapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      const ttl = typeof expiresIn === 'number' ? expiresIn + clockTolerance : undefined;

      if (this.model === 'Session') store.set(uidKey(payload.uid), id, ttl);
      if (payload.userCode) store.set(userCodeKey(payload.userCode), id, ttl);

      if (GRANTABLE.has(this.model) && payload.grantId) {
        const members = store.get(grantKey(payload.grantId)) ?? new Set();
        members.add(key);
        store.set(grantKey(payload.grantId), members); // pruned lazily in revokeByGrantId
      }

      store.set(key, payload, ttl);
    }

    async find(id) {
      return store.get(this.key(id));
    }

    async findByUid(uid) {
      const id = store.get(uidKey(uid));
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode) {
      const id = store.get(userCodeKey(userCode));
      return id === undefined ? undefined : this.find(id);
    }

    async consume(id) {
      const payload = store.get(this.key(id));
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) {
      const key = this.key(id);
      const payload = store.get(key);
      store.delete(key);
      if (payload?.uid && store.get(uidKey(payload.uid)) === id) store.delete(uidKey(payload.uid));
      if (payload?.userCode && store.get(userCodeKey(payload.userCode)) === id) {
        store.delete(userCodeKey(payload.userCode));
      }
    }

    async revokeByGrantId(grantId) {
      const members = store.get(grantKey(grantId));
      if (members) {
        for (const key of members) store.delete(key);
      }
      store.delete(grantKey(grantId));
    }
  };
}
