// Walks the Dagster UI served by `rr ui` in Debian's chromium (playwright-core, no browser download):
// launch a materialisation of one partition, wait for its run to succeed, open the asset check
// results of the teacher and the lineage of the checkpoint. Screenshots go to OUT_DIR.
// Usage: node ui_walkthrough.mjs BASE_URL OUT_DIR
import { chromium } from 'playwright-core';

const [, , base, outDir] = process.argv;
const shot = (page, name) => page.screenshot({ path: `${outDir}/${name}.png` });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(60000);

  // The catalog renders only the rows in view: a tall page shows every asset down to the teacher's.
  await page.setViewportSize({ width: 1400, height: 1800 });
  await page.goto(`${base}/assets`, { waitUntil: 'networkidle' });
  const skip = page.getByRole('button', { name: 'Skip' });
  if (await skip.isVisible().catch(() => false)) await skip.click();
  await page.getByText('teacher_judgments').first().waitFor();
  await shot(page, '01-catalog');
  await page.setViewportSize({ width: 1400, height: 900 });

  await page.goto(`${base}/assets/bm25_index`, { waitUntil: 'networkidle' });
  await page.getByRole('button', { name: 'Materialize…' }).click();
  // The test instance has one collection partition, so "All" selects exactly that one.
  await page.getByRole('button', { name: 'All', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText('1 partition', { exact: true }).waitFor();
  await shot(page, '02-launch-dialog');
  const launched = page.waitForResponse(async (r) => r.url().includes('/graphql')
    && /"operationName":"Launch/.test(r.request().postData() || ''));
  await page.getByRole('button', { name: 'Launch 1 run' }).click();
  const answer = await (await launched).text();
  const match = answer.match(/"run":\s*\{\s*"id":\s*"([0-9a-f-]{36})"/);
  if (!match) throw new Error(`no run id in the launch answer: ${answer.slice(0, 300)}`);
  result.run_id = match[1];
  await page.goto(`${base}/runs/${result.run_id}`, { waitUntil: 'networkidle' });
  await page.getByText('Success', { exact: true }).first().waitFor({ timeout: 300000 });
  await shot(page, '03-run-succeeded');

  await page.goto(`${base}/assets/teacher_judgments?view=checks`, { waitUntil: 'networkidle' });
  await page.getByText('teacher_judgments_gx_suite').first().click();
  await page.getByText('Passed', { exact: true }).first().waitFor();
  result.checks = await page.getByText(/teacher_agrees_with_qrels|teacher_judgments_gx_suite/).allInnerTexts();
  await shot(page, '04-asset-checks');

  await page.goto(`${base}/assets/student_checkpoint?view=lineage`, { waitUntil: 'networkidle' });
  await page.getByRole('button', { name: 'Upstream' }).click();
  await page.getByText('train_pointwise').first().waitFor();
  result.lineage = [];
  for (const name of ['student_base_model', 'train_pointwise', 'train_pairwise', 'train_listwise']) {
    if (await page.getByText(name, { exact: true }).first().isVisible()) result.lineage.push(name);
  }
  await shot(page, '05-checkpoint-lineage');
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error);
  const pages = browser.contexts().flatMap((c) => c.pages());
  if (pages.length) await pages[0].screenshot({ path: `${outDir}/failure.png` }).catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
