// Drive the `speechvision serve` page in headless Chromium (used by tests/test_web.py).
//
//   node page.mjs URL UPLOAD_FILE OUT_DIR
//
// Uploads UPLOAD_FILE into the audio input, presses Generate and waits until the page shows either
// generated images or an error in the status box. Writes OUT_DIR/page.png (a screenshot) and, when an
// image came back, OUT_DIR/image-0.png (the bytes the browser received). Prints one JSON line:
// {"status": "...", "images": N, "image": "path or null"}.
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
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  page.setDefaultTimeout(120_000);
  await page.goto(url, { waitUntil: "networkidle" });
  await page.locator("#audio-in input[type=file]").setInputFiles(upload);
  await page.waitForLoadState("networkidle");
  await page.locator("#generate").click();
  // Either images appear or the status box reports an error.
  await page.waitForFunction(() => {
    const imgs = document.querySelectorAll("#images img");
    const status = document.querySelector("#status")?.innerText || "";
    return imgs.length > 0 || status.includes("Error");
  });
  await page.waitForLoadState("networkidle");
  const status = (await page.locator("#status").innerText()).trim();
  const imgs = page.locator("#images img");
  const count = await imgs.count();
  let image = null;
  if (count > 0) {
    const src = await imgs.first().getAttribute("src");
    const resp = await page.request.get(new URL(src, url).href);
    image = join(outDir, "image-0.png");
    writeFileSync(image, await resp.body());
  }
  await page.screenshot({ path: join(outDir, "page.png"), fullPage: true });
  console.log(JSON.stringify({ status, images: count, image }));
} finally {
  await browser.close();
}
