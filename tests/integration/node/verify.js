// verify.js — checks Standard Webhooks signatures with the `standardwebhooks` package from
// npm (an implementation independent of qbcdc's). Reads a JSON array of cases from stdin,
// each {"secret":"whsec_...","headers":{"webhook-id":...,"webhook-timestamp":...,
// "webhook-signature":...},"body":"<raw body>"}, and prints a JSON array: "ok", or the
// verifier's error message.
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((c) => {
    try {
      new Webhook(c.secret).verify(c.body, c.headers);
      return "ok";
    } catch (e) {
      return String(e && e.message ? e.message : e);
    }
  });
  process.stdout.write(JSON.stringify(out));
});
