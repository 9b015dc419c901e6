// A person approving a device sign-in on the IdP's own pages, in headless
// Chromium (Debian's; playwright-core from ../browser): opens the
// verification URL, confirms the code, signs in as LOGIN (any password:
// oidc-provider's development sign-in), consents.
//
//   node approve.mjs URL LOGIN
//
// Prints the last page's text; exits 1 if it is not "Sign-in Success".
import { launch } from "../browser/launch.mjs";

const [url, login] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(url);
  // "Confirm Device": the code shown is the CLI's.
  await page.click("button[autofocus]");
  await page.waitForSelector("input[name=login]");
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any");
  await page.click("button[type=submit]");
  // Consent, then the success page.
  await page.waitForSelector("input[name=prompt][value=consent]", { state: "attached" });
  await page.click("button[type=submit]");
  await page.waitForSelector("text=Sign-in Success");
  const text = (await page.textContent("body")).replace(/\s+/g, " ").trim();
  console.log(text);
  process.exitCode = text.includes("Sign-in Success") ? 0 : 1;
} finally {
  await browser.close();
}
