// The storefront's own behaviour: cart and purchase buttons, and signing in. Everything it
// reports goes through pulserec.js (window.pulserec), loaded before this file (both deferred).
(function () {
  "use strict";
  var sdk = window.pulserec;
  if (!sdk) return;

  function show(signedIn) {
    document.getElementById("sign-in").hidden = !!signedIn;
    document.getElementById("signed-in").hidden = !signedIn;
    document.getElementById("user-name").textContent = signedIn || "";
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("[data-shop-track]") : null;
    if (!button) return;
    var props = { item_id: button.getAttribute("data-item") };
    var value = button.getAttribute("data-value");
    if (value !== null) props.value = parseFloat(value);
    var type = button.getAttribute("data-shop-track");
    sdk.track(type, props);
    document.getElementById("done").textContent = type === "purchase" ? "Thank you for your order." : "Added to your cart.";
  });

  document.getElementById("sign-in").addEventListener("submit", function (e) {
    e.preventDefault();
    var id = document.getElementById("user").value.trim();
    if (!id) return;
    sdk.identify(id);
    show(id);
  });

  document.getElementById("sign-out").addEventListener("click", function () {
    sdk.reset();
    show(null);
    sdk.refresh();
  });

  show(sdk.userId);
})();
