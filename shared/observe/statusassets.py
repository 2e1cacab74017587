"""The status page's own style and script, and the Content-Security-Policy that lets only them
run (hashes of exactly these texts)."""

from __future__ import annotations

import base64
import hashlib

REFRESH_MS = 3000

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:baseline}
header h1{font-size:18px;margin:0}header small{opacity:.75}
#note{color:#f0b429}
#panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px;padding:14px}
section{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px 3px 0;border-bottom:1px solid #eee;vertical-align:top}
th{white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px;word-break:break-all;white-space:pre-wrap}
.bad{color:#c0392b;font-weight:600}.ok{color:#1e8449}.muted{color:#777}
.down{background:#c0392b;color:#fff;padding:16px;border-radius:6px;grid-column:1/-1}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:14px}
svg.chart{width:100%;height:auto}
svg text{font-size:11px;fill:#555}
svg .axis{stroke:#999}
polyline{fill:none;stroke-width:2}
.line0{stroke:#2e86de}.line1{stroke:#e67e22}.line2{stroke:#27ae60}
.key0{fill:#2e86de}.key1{fill:#e67e22}.key2{fill:#27ae60}
"""

SCRIPT = """
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var TAGS = ["div", "section", "h2", "p", "span", "small", "strong", "code", "table", "thead",
    "tbody", "tr", "th", "td", "svg", "title", "line", "polyline", "text"];
  var ATTRS = ["class", "id", "data-field", "viewBox", "role", "aria-label", "points", "x", "y",
    "x1", "y1", "x2", "y2", "text-anchor", "colspan"];
  function copy(node) {
    if (node.nodeType !== 1) { return document.createTextNode(node.textContent); }
    if (TAGS.indexOf(node.localName) < 0) { return document.createTextNode(node.textContent); }
    var out = node.namespaceURI === SVG ? document.createElementNS(SVG, node.localName)
      : document.createElement(node.localName);
    ATTRS.forEach(function (name) {
      if (node.hasAttribute(name)) { out.setAttribute(name, node.getAttribute(name)); }
    });
    node.childNodes.forEach(function (child) { out.appendChild(copy(child)); });
    return out;
  }
  function note(text) { document.getElementById("note").textContent = text; }
  function refresh() {
    fetch("/panels", {cache: "no-store"}).then(function (response) {
      return response.text();
    }).then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("panels");
      if (!fresh) { throw new Error("no panels"); }
      document.getElementById("panels").replaceWith(copy(fresh));
      note("");
    }).catch(function () {
      note("status server not answering; retrying");
    }).finally(function () { setTimeout(refresh, PERIOD); });
  }
  setTimeout(refresh, PERIOD);
})();
""".replace("PERIOD", str(REFRESH_MS))


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_sha256(SCRIPT)}; style-src {_sha256(STYLE)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Only the page's own script and style run: an injected handler or tag would be refused too."""
