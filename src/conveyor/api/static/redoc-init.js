// Starts Redoc on /redoc. A file, not an inline script: the page's CSP allows scripts from
// this server only. The document's URL comes from the page (it honours a root path).
"use strict";
(function () {
  var root = document.getElementById("redoc");
  Redoc.init(root.dataset.openapiUrl, {
    expandResponses: "200,201",
    pathInMiddlePanel: true,
    requiredPropsFirst: true,
    sortPropsAlphabetically: false,
  }, root);
})();
