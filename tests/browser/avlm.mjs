// Drive the AVLM tab of the `speechvision serve` page in headless Chromium (used by tests/test_web_avlm.py).
//
//   node avlm.mjs URL VIDEO_FILE OUT_DIR
//
// Opens the "Emotion and reply (AVLM)" tab, uploads VIDEO_FILE into the video input, presses "Recognise and
// reply" and waits until the tab shows either a reply or an error in its status box. Writes OUT_DIR/page.png
// (a screenshot) and, when a reply came back, OUT_DIR/reply.wav (the bytes the browser received). Prints one
// JSON line: {"status": "...", "labels": "...", "reply": "path or null"}.
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [url, upload, outDir] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1300 } });
  page.setDefaultTimeout(180_000);
  await page.goto(url, { waitUntil: "networkidle" });
  await page.getByRole("tab", { name: "Emotion and reply (AVLM)" }).click();
  await page.locator("#video-in input[type=file]").setInputFiles(upload);
  await page.waitForLoadState("networkidle");
  await page.locator("#emotion-go").click();
  await page.waitForFunction(() => {
    const status = document.querySelector("#emotion-status")?.innerText || "";
    return status.includes("Error") || status.includes("heard and saw");
  });
  await page.waitForLoadState("networkidle");
  const status = (await page.locator("#emotion-status").innerText()).trim();
  const labels = (await page.locator("#emotion-probs").innerText()).trim();
  let reply = null;
  const audio = page.locator("#reply-audio audio, #reply-audio a[download]");
  if (status.includes("heard and saw") && (await audio.count()) > 0) {
    const el = audio.first();
    const src = (await el.getAttribute("src")) || (await el.getAttribute("href"));
    if (src) {
      const resp = await page.request.get(new URL(src, url).href);
      reply = join(outDir, "reply.wav");
      writeFileSync(reply, await resp.body());
    }
  }
  await page.screenshot({ path: join(outDir, "page.png"), fullPage: true });
  console.log(JSON.stringify({ status, labels, reply }));
} finally {
  await browser.close();
}
