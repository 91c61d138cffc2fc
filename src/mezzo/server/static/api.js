// REST calls to mezzo with the API key kept in sessionStorage; errors carry the server's message.

const KEY_NAME = "mezzo.apiKey";

export class Unauthorized extends Error {}
export class Unreachable extends Error {}
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_NAME) || "",
  set: (key) => sessionStorage.setItem(KEY_NAME, key.trim()),
  clear: () => sessionStorage.removeItem(KEY_NAME),
};

export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  const key = apiKey.get();
  if (key) headers.authorization = `Bearer ${key}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Unreachable("the mezzo server cannot be reached");
  }
  const data = await response.json().catch(() => null);
  if (response.status === 401) throw new Unauthorized(data?.error || "unauthorized");
  if (!response.ok) {
    throw new ApiError(response.status, data?.error || `HTTP ${response.status}`);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const enc = encodeURIComponent;
