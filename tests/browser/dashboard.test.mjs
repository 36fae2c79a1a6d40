// Browser test of the profiling dashboard (GET /debug/ on the admin listener).
//
// Drives Debian's /usr/bin/chromium through playwright-core; it never
// downloads a browser. Against a running server it:
//   1. sends N menu GETs and a few bad requests (4xx) from Node, half before
//      the page opens and half while it is open;
//   2. waits for the page to poll /debug/perf after the traffic, then checks
//      what the page shows against /debug/perf fetched at the same moment
//      (menu count and 4xx, unrouted count, requests/s, cache hit ratio, pool
//      size, RSS, the menu_cache flag, a stage bar, statements);
//   3. switches menu_cache to "off" from the page (first without the token,
//      expecting 401 when the server has one, then with it), checks
//      GET /debug/flags, and switches it back the same way;
//   4. runs the doctor from its panel over a 3 s window of uncached menu reads
//      (menu_cache is still off) and checks that the panel shows the page's own
//      GET /debug/doctor answer, finding by finding, in rank order;
//   5. saves a full-page screenshot, also on failure.
//
// Environment:
//   HOTPLATE_ADMIN_URL    admin listener, e.g. http://127.0.0.1:8081 (required)
//   HOTPLATE_API_URL      API listener, e.g. http://127.0.0.1:8080 (required)
//   HOTPLATE_ADMIN_TOKEN  the server's admin token, when it has one
//   HOTPLATE_SCREENSHOT   where to save the PNG (default: reports/dashboard.png in the repo)
//   HOTPLATE_MENU_REQUESTS  N (default 200)
//   HOTPLATE_CHROMIUM     the browser (default /usr/bin/chromium)
//
// Exits 0 when every check passed, 1 otherwise; the whole run is bounded by
// DEADLINE_MS.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const DEADLINE_MS = 90_000;
const DOCTOR_SECONDS = 3; // the Doctor panel's window in step 4
const HTTP_TIMEOUT_MS = 5_000;
const here = dirname(fileURLToPath(import.meta.url));

const ADMIN = (process.env.HOTPLATE_ADMIN_URL || '').replace(/\/+$/, '');
const API = (process.env.HOTPLATE_API_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.HOTPLATE_ADMIN_TOKEN || '';
const SCREENSHOT = resolve(process.env.HOTPLATE_SCREENSHOT || join(here, '..', '..', 'reports', 'dashboard.png'));
const N = Number(process.env.HOTPLATE_MENU_REQUESTS || 200);
const CHROMIUM = process.env.HOTPLATE_CHROMIUM || '/usr/bin/chromium';
const MENU_ROUTE = 'GET /restaurants/{id}/menu';
const UNROUTED = '* (unrouted)';
const BAD_MENU = 3; // GET /restaurants/abc/menu: 400 on the menu route
const BAD_PATH = 2; // GET /no-such-path: 404, unrouted

if (!ADMIN || !API) {
  console.error('dashboard test: set HOTPLATE_ADMIN_URL and HOTPLATE_API_URL');
  process.exit(2);
}

let passed = 0;
const failures = [];
function check(cond, what, detail) {
  if (cond) {
    passed += 1;
    console.log('ok   ' + what);
  } else {
    failures.push(what);
    console.log('FAIL ' + what + (detail !== undefined ? ': ' + detail : ''));
  }
  return cond;
}

const watchdog = setTimeout(() => {
  console.error(`dashboard test: still running after ${DEADLINE_MS / 1000} s; giving up`);
  process.exit(1);
}, DEADLINE_MS);
watchdog.unref();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function http(url, opts = {}) {
  const res = await fetch(url, { ...opts, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

const perf = async () => (await http(ADMIN + '/debug/perf')).json();
const flagValue = async (name) => (await http(ADMIN + '/debug/flags')).json().flags[name].value;
const routeOf = (doc, key) => doc.routes.find((r) => r.method + ' ' + r.route === key);

// Sends `paths` with `concurrency` requests in flight; @return the statuses.
async function traffic(paths, concurrency = 4) {
  const statuses = [];
  let next = 0;
  async function worker() {
    while (next < paths.length) {
      const p = paths[next++];
      statuses.push((await http(API + p)).status);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

// Retries `fn` (which throws on a mismatch) until it passes or `ms` runs out; @return its value.
async function eventually(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: ${last && last.message}`);
    await sleep(200);
  }
}

// The page shows the ratio in percent with two decimals, or a dash before the first lookup.
function hitRatioMatches(text, cache) {
  if (cache.hits + cache.misses + cache.errors === 0) return text === '—';
  return Math.abs(toNum(text) - cache.hit_ratio * 100) <= 0.005 + 1e-9;
}

const toNum = (s) => (s === null || s === undefined ? NaN : Number(String(s).replace(/[,\s%]|µs|ms|MiB|GiB/g, '')));

async function main() {
  // ---- preflight and the first half of the traffic -------------------------------------------
  const list = (await http(API + '/restaurants')).json();
  const rid = list.restaurants && list.restaurants.length ? list.restaurants[0].id : 1;
  const menuPath = `/restaurants/${rid}/menu`;
  const first = await http(API + menuPath);
  if (!check(first.status === 200, `GET ${menuPath} answers 200`, first.status)) return;

  const before = await perf();
  const base = routeOf(before, MENU_ROUTE);
  const baseCount = base.count, base4xx = base.by_class['4xx'];
  const baseUnrouted = routeOf(before, UNROUTED).count;
  const originalCache = before.flags.menu_cache.value;

  const half = Math.floor(N / 2);
  let statuses = await traffic(Array(half).fill(menuPath));
  statuses = statuses.concat(await traffic([...Array(BAD_MENU).fill('/restaurants/abc/menu'), ...Array(BAD_PATH).fill('/no-such-path')], 1));

  // ---- the page --------------------------------------------------------------------------------
  const userDataDir = mkdtempSync(join(tmpdir(), 'hotplate-dash-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 1000 },
    timeout: 20_000,
  });
  let page;
  try {
    page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(10_000);
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    const res = await page.goto(ADMIN + '/debug/', { waitUntil: 'load' });
    check(res.status() === 200, 'GET /debug/ answers 200', res.status());
    const ctype = res.headers()['content-type'] || '';
    check(ctype.startsWith('text/html'), 'the page is served as text/html (one content-type)', ctype);
    check(/default-src 'none'/.test(res.headers()['content-security-policy'] || ''), 'the page carries its Content-Security-Policy');

    // The second half of the traffic while the page polls.
    statuses = statuses.concat(await traffic(Array(N - half).fill(menuPath)));
    const ok = statuses.filter((s) => s === 200).length, bad = statuses.filter((s) => s >= 400 && s < 500).length;
    check(ok === N && bad === BAD_MENU + BAD_PATH, `traffic: ${N} menu GETs answered 200 and ${BAD_MENU + BAD_PATH} bad requests 4xx`,
      `${ok} × 200, ${bad} × 4xx`);

    await page.waitForSelector('[data-testid=status].ok');
    const seqAtEnd = Number(await page.getAttribute('body', 'data-poll-seq'));
    await page.waitForFunction((s) => Number(document.body.dataset.pollSeq) >= s + 2, seqAtEnd, { timeout: 8_000 });

    // ---- what the page shows against /debug/perf at the same moment ----------------------------
    const read = () => page.evaluate(([menuKey, unroutedKey]) => {
      const t = (sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : null; };
      const row = (key, id) => t(`tr[data-route="${CSS.escape(key)}"] [data-testid=${id}]`);
      return {
        seq: Number(document.body.dataset.pollSeq),
        menuCount: row(menuKey, 'route-count'), menu4xx: row(menuKey, 'route-4xx'),
        menuP50: row(menuKey, 'route-p50'), menuP99: row(menuKey, 'route-p99'), menuRps: row(menuKey, 'route-rps'),
        unroutedCount: row(unroutedKey, 'route-count'),
        totalRps: t('[data-testid=total-rps]'), hitRatio: t('[data-testid=cache-hit-ratio]'),
        pool: t('[data-testid=pool-use]'), rss: t('[data-testid=rss]'), heap: t('[data-testid=heap-allocated]'),
        flag: t('[data-testid=flag-value-menu_cache]'), flagInput: (document.querySelector('[data-testid=flag-input-menu_cache]') || {}).value,
        stageSegments: document.querySelectorAll(`tr[data-route="${CSS.escape(menuKey)}"] [data-testid=stage-bar] span`).length,
        stmtRows: document.querySelectorAll('[data-testid=stmt-row]').length,
      };
    }, [MENU_ROUTE, UNROUTED]);

    const { shown, doc } = await eventually(async () => {
      const shown = await read();
      const doc = await perf();
      const m = routeOf(doc, MENU_ROUTE);
      if (toNum(shown.menuCount) !== m.count) throw new Error(`menu count shown ${shown.menuCount}, /debug/perf ${m.count}`);
      if (!hitRatioMatches(shown.hitRatio, doc.cache))
        throw new Error(`hit ratio shown ${shown.hitRatio}, /debug/perf ${doc.cache.hit_ratio}`);
      return { shown, doc };
    }, 6_000, 'the page agrees with /debug/perf').catch((e) => { check(false, e.message); return {}; });
    if (!shown) return;

    const m = routeOf(doc, MENU_ROUTE);
    console.log('     shown: ' + JSON.stringify(shown));
    check(toNum(shown.menuCount) === m.count && m.count >= baseCount + N + 1,
      `menu route count shown (${shown.menuCount}) equals /debug/perf and includes the ${N} GETs`, `perf ${m.count}, before ${baseCount}`);
    check(toNum(shown.menu4xx) === m.by_class['4xx'] && m.by_class['4xx'] >= base4xx + BAD_MENU,
      `menu route 4xx shown (${shown.menu4xx}) equals /debug/perf and includes the ${BAD_MENU} bad ids`, `perf ${m.by_class['4xx']}`);
    check(toNum(shown.unroutedCount) === routeOf(doc, UNROUTED).count && toNum(shown.unroutedCount) >= baseUnrouted + BAD_PATH,
      `unrouted count shown (${shown.unroutedCount}) equals /debug/perf`, `perf ${routeOf(doc, UNROUTED).count}`);
    const perfRps = doc.routes.reduce((a, r) => a + (r.latency['10s'].rate_per_s || 0), 0);
    check(toNum(shown.totalRps) > 0 && perfRps > 0, `requests/s shown (${shown.totalRps}) is nonzero`, `perf ${perfRps}`);
    check(toNum(shown.menuRps) > 0, `menu route req/s shown (${shown.menuRps}) is nonzero`);
    check(shown.menuP50 !== '—' && shown.menuP99 !== '—' && /µs|ms|s$/.test(shown.menuP99),
      `menu route p50/p99 shown with units (${shown.menuP50} / ${shown.menuP99})`);
    check(hitRatioMatches(shown.hitRatio, doc.cache),
      `cache hit ratio shown (${shown.hitRatio}) matches /debug/perf (${(doc.cache.hit_ratio * 100).toFixed(4)} %)`);
    check(shown.pool === `${doc.pool.in_use} / ${doc.pool.size}`, `pool shown (${shown.pool}) matches /debug/perf`,
      `${doc.pool.in_use} / ${doc.pool.size}`);
    const rssMiB = doc.process.rss_bytes / 1048576;
    check(Math.abs(toNum(shown.rss) - rssMiB) <= Math.max(2, rssMiB * 0.1), `RSS shown (${shown.rss}) is near /debug/perf`, rssMiB.toFixed(1));
    if (doc.heap && typeof doc.heap.allocated === 'number') check(/MiB|GiB/.test(shown.heap), `heap shown (${shown.heap})`);
    else check(shown.heap === 'n/a', `heap shown as n/a without jemalloc statistics (${shown.heap})`);
    check(shown.flag === doc.flags.menu_cache.value && shown.flagInput === doc.flags.menu_cache.value,
      `menu_cache shown (${shown.flag}) matches /debug/perf`, doc.flags.menu_cache.value);
    check(shown.stageSegments > 0, `menu route stage bar has ${shown.stageSegments} segments`);
    const stmtsRan = doc.statements.filter((s) => s.count > 0).length;
    check(shown.stmtRows === Math.min(10, stmtsRan), `statements table shows ${shown.stmtRows} rows`, `${stmtsRan} statements ran`);
    check(consoleErrors.length === 0, 'no console errors (CSP violations included)', consoleErrors.join(' | '));

    // ---- switching menu_cache from the page ------------------------------------------------------
    const target = originalCache === 'off' ? 'redis' : 'off';
    const result = page.locator('[data-testid=flags-result]');
    async function applyFromPage(value, token) {
      await page.fill('[data-testid=admin-token]', token);
      await page.selectOption('[data-testid=flag-input-menu_cache]', value);
      const before = await result.textContent();
      await page.click('[data-testid=flags-apply]');
      await page.waitForFunction((b) => {
        const e = document.querySelector('[data-testid=flags-result]');
        return !e.hidden && e.textContent !== b;
      }, before);
      return (await result.textContent()) || '';
    }
    if (TOKEN) {
      const text = await applyFromPage(target, '');
      check(/→ 401/.test(text) && (await flagValue('menu_cache')) === originalCache,
        'without the token the page shows the 401 and nothing changes', text);
    }
    let text = await applyFromPage(target, TOKEN);
    check(/→ 200/.test(text), `the page applied menu_cache=${target} (${text.split('\n').pop()})`, text);
    check((await flagValue('menu_cache')) === target, `GET /debug/flags reports menu_cache=${target}`);
    await page.waitForFunction((v) => document.querySelector('[data-testid=flag-value-menu_cache]').textContent === v, target, { timeout: 5_000 })
      .then(() => check(true, `the page shows menu_cache=${target}`), () => check(false, `the page shows menu_cache=${target}`));
    const miss = await http(API + menuPath);
    check(miss.status === 200, `GET ${menuPath} still answers 200 with menu_cache=${target} (x-cache: ${miss.headers.get('x-cache')})`);

    // ---- the Doctor panel, run from the page while menus are read uncached ---------------------
    // The page's own GET /debug/doctor answer is what the panel must show, row for row; the menu load with the
    // cache off (the flag above) gives it something to find.
    await page.selectOption('[data-testid=doctor-seconds]', String(DOCTOR_SECONDS));
    const answer = page.waitForResponse((r) => r.url().includes('/debug/doctor?'), { timeout: (DOCTOR_SECONDS + 30) * 1000 });
    await page.click('[data-testid=doctor-run]');
    const loadEnd = Date.now() + DOCTOR_SECONDS * 1000;
    const loadDone = Promise.all(Array.from({ length: 6 }, async () => {
      while (Date.now() < loadEnd) await http(API + menuPath);
    }));
    const report = await (await answer).json();
    await loadDone;
    await page.waitForFunction(() => document.body.dataset.doctor === 'done' || document.body.dataset.doctor === 'failed',
      null, { timeout: 10_000 });
    check((await page.getAttribute('body', 'data-doctor')) === 'done', 'the Doctor panel ran the doctor',
      await page.textContent('[data-testid=doctor-status]'));
    const rows = await page.$$eval('[data-testid=doctor-row]', (trs) => trs.map((tr) => ({
      kind: tr.dataset.kind, title: tr.querySelector('[data-testid=doctor-title]').textContent,
      summary: tr.querySelector('[data-testid=doctor-summary]').textContent,
      fix: tr.querySelector('[data-testid=doctor-fix]').textContent,
    })));
    check(rows.length === report.findings.length, `the panel shows the report's ${report.findings.length} findings`, rows.length);
    check(rows.every((r, i) => r.kind === report.findings[i].kind && r.title === report.findings[i].title &&
      r.summary === report.findings[i].summary && r.fix.startsWith(report.findings[i].fix.text)),
      `each row is its finding, in rank order (${rows.map((r) => r.kind).join(', ') || 'none'})`,
      JSON.stringify(rows).slice(0, 500));
    const status = await page.textContent('[data-testid=doctor-status]');
    check(status.startsWith(`${report.findings.length} finding`) && status.includes(`in ${report.window_s} s of traffic`),
      `the panel's headline says so (${status})`);
    check((await page.isVisible('[data-testid=doctor-empty]')) === (report.findings.length === 0),
      'the empty note shows exactly when there is no finding');
    check((await page.getAttribute('[data-testid=doctor-md]', 'href')) === `/debug/doctor?format=md&seconds=${DOCTOR_SECONDS}`,
      'the Markdown link asks for the same window');

    text = await applyFromPage(originalCache, TOKEN);
    check(/→ 200/.test(text), `the page switched menu_cache back to ${originalCache}`, text);
    check((await flagValue('menu_cache')) === originalCache, `GET /debug/flags reports menu_cache=${originalCache} again`);
    await page.waitForFunction((v) => document.querySelector('[data-testid=flag-value-menu_cache]').textContent === v, originalCache, { timeout: 5_000 })
      .catch(() => {});
    // One more poll so the charts have the latest point in the screenshot.
    const seq = Number(await page.getAttribute('body', 'data-poll-seq'));
    await page.waitForFunction((s) => Number(document.body.dataset.pollSeq) > s, seq, { timeout: 5_000 }).catch(() => {});
  } finally {
    if (page) {
      try {
        mkdirSync(dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 10_000 });
        console.log('screenshot: ' + SCREENSHOT);
      } catch (e) {
        console.log('screenshot failed: ' + e.message);
      }
    }
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
    // Whatever happened, leave the flag as it was.
    try {
      if ((await flagValue('menu_cache')) !== originalCache) {
        await http(ADMIN + '/debug/flags', {
          method: 'POST', body: JSON.stringify({ menu_cache: originalCache }),
          headers: { 'content-type': 'application/json', ...(TOKEN ? { authorization: 'Bearer ' + TOKEN } : {}) },
        });
      }
    } catch (e) {
      console.log('could not restore menu_cache: ' + e.message);
    }
  }
}

try {
  await main();
} catch (e) {
  check(false, 'unexpected error', e && e.stack ? e.stack : String(e));
}
clearTimeout(watchdog);
console.log(`dashboard: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length === 0 && passed > 0 ? 0 : 1);
