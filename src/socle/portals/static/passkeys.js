// WebAuthn glue for the login and "mes clés d'accès" pages (no inline script: the CSP forbids it).
// A button with data-passkey="get" or "create" fetches the options from its form's data-options URL
// (POST, with the form's CSRF token), calls the authenticator, and posts the credential as JSON.
(function () {
  "use strict";
  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }
  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function showError(message) {
    var box = document.getElementById("passkey-error");
    if (box) { box.hidden = false; box.querySelector("p").textContent = message; box.focus(); }
  }
  function serialize(cred) {
    var r = cred.response, json = {
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      json.response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) { json.response.transports = r.getTransports(); }
    } else {
      json.response.authenticatorData = toB64url(r.authenticatorData);
      json.response.signature = toB64url(r.signature);
      if (r.userHandle) { json.response.userHandle = toB64url(r.userHandle); }
    }
    return JSON.stringify(json);
  }
  // The page's language: the error box carries its translated messages (data-unsupported, data-failed).
  function message(name, fallback) {
    var box = document.getElementById("passkey-error");
    return (box && box.getAttribute("data-" + name)) || fallback;
  }
  function run(button) {
    var form = button.form, mode = button.getAttribute("data-passkey");
    if (!window.PublicKeyCredential) { showError(message("unsupported", "Ce navigateur ne gère pas les clés d'accès.")); return; }
    var body = new URLSearchParams({ csrf: form.elements.csrf.value });
    fetch(form.getAttribute("data-options"), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("options"); } return r.json(); })
      .then(function (o) {
        o.challenge = toBytes(o.challenge);
        if (mode === "create") {
          o.user.id = toBytes(o.user.id);
          (o.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
          return navigator.credentials.create({ publicKey: o });
        }
        (o.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
        return navigator.credentials.get({ publicKey: o });
      })
      .then(function (cred) { form.elements.credential.value = serialize(cred); form.submit(); })
      .catch(function () { showError(message("failed", "La clé d'accès n'a pas pu être utilisée. Réessayez ou utilisez un code.")); });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-passkey]");
    if (button) { event.preventDefault(); run(button); }
  });
})();
