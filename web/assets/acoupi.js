// The dashboard's one script of its own (no inline script: the Content-Security-Policy
// forbids it). With a token set on the server: the login form keeps the token in this
// tab's sessionStorage, every htmx request carries it as `Authorization: Bearer`, and
// the page that asked for the login is then loaded through htmx.
(function () {
  "use strict";
  var KEY = "acoupi-token";

  function token() {
    try {
      return window.sessionStorage.getItem(KEY);
    } catch (e) {
      return null;
    }
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var t = token();
    if (t) {
      event.detail.headers["Authorization"] = "Bearer " + t;
    }
  });

  // A 401 on an htmx request (a wrong or expired token): forget it and show the form.
  document.addEventListener("htmx:responseError", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 401) {
      try {
        window.sessionStorage.removeItem(KEY);
      } catch (e) {}
      window.location.reload();
    }
  });

  function loadHere() {
    window.htmx.ajax("GET", window.location.pathname + window.location.search, {
      target: "body",
      swap: "outerHTML",
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("acoupi-login");
    if (!form) {
      return;
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = document.getElementById("acoupi-token");
      try {
        window.sessionStorage.setItem(KEY, input.value);
      } catch (e) {}
      loadHere();
    });
    if (token()) {
      loadHere();
    }
  });
})();
