// What a webhook URL may look like. An allow-list prefix
// (TTEOK_WEBHOOK_ALLOWED_URL_PREFIXES) is matched against the WHATWG
// normalization of the URL, which resolves `/./` and `/../` but leaves
// encoded ones alone: https://api.example.com/tteok/..%2fadmin starts with
// https://api.example.com/tteok/ and yet many servers and proxies decode it
// to /admin. So a path with an encoded separator (%2F, %5C), a backslash, or
// a dot segment written in any form (., .., %2E, .%2E, …) is refused outright,
// before any prefix check: no real receiver needs one. The CRD refuses the
// same URLs at admission (manifests/crd); this is the controller's own check,
// for the global webhook, the prefixes, and LiveStreams stored before.

/** Why `url` cannot be a webhook URL, as a sentence; undefined when it can. */
export function webhookUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'it is not a URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'it is not an http(s) URL';
  // The path as written (before normalization removed the plain dot segments), without query and fragment.
  const authorityAndPath = url.slice(url.indexOf('//') + 2).split(/[?#]/, 1)[0]!;
  const slash = authorityAndPath.search(/[/\\]/);
  const rawPath = slash < 0 ? '' : authorityAndPath.slice(slash);
  if (/%2f|%5c/i.test(rawPath) || rawPath.includes('\\')) return 'its path has an encoded path separator (%2F, %5C) or a backslash';
  const segments = rawPath.split('/').map((s) => s.replace(/%2e/gi, '.'));
  if (segments.some((s) => s === '.' || s === '..')) return 'its path has a dot segment ("." or "..", also when percent-encoded)';
  return undefined;
}

/**
 * Whether `url` may be sent to under `prefixes` (normalized URLs, each ending
 * in "/"): a URL with a problem never, otherwise any URL when there are no
 * prefixes, else one whose normalized form starts with one of them.
 */
export function urlAllowed(url: string, prefixes: readonly string[] | undefined): boolean {
  if (webhookUrlProblem(url)) return false;
  if (!prefixes) return true;
  const href = new URL(url).href;
  return prefixes.some((p) => href.startsWith(p));
}
