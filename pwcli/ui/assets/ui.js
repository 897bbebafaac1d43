/* pwcli ui: compose, send, watch the timeline fill (over the WebSocket), keep a history, compare
   two runs side by side. Drawing is the report's (window.PW); values are always set as text. */
(function () {
  "use strict";
  var el = PW.el, $ = function (id) { return document.getElementById(id); };
  var view = $("ui-view"), current = null, append = null;

  function status(text, bad) { var s = $("ui-status"); s.textContent = text; s.className = bad ? "bad" : ""; }

  function fill(select, values, keep) {
    values.forEach(function (v) { select.appendChild(el("option", {value: v, text: v})); });
    if (keep) select.value = keep;
  }

  function spec() {
    return {plugin: $("ui-plugin").value, runtime: $("ui-runtime").value, root_id: $("ui-root-id").value,
            configuration: $("ui-config").value, file: $("ui-file").value || null,
            request: {method: $("ui-method").value, path: $("ui-path").value,
                      headers: $("ui-req-headers").value, body: $("ui-req-body").value},
            response: {status: $("ui-status-code").value, headers: $("ui-resp-headers").value,
                       body: $("ui-resp-body").value}};
  }

  function history() {
    fetch("api/runs").then(function (r) { return r.json(); }).then(function (runs) {
      var list = $("ui-history"); list.textContent = "";
      runs.forEach(function (run) {
        var box = el("input", {type: "checkbox", "class": "ui-pick", value: String(run.id)});
        box.addEventListener("change", function () {
          $("ui-compare").disabled = document.querySelectorAll(".ui-pick:checked").length !== 2;
        });
        var link = el("a", {href: "#", text: "#" + run.id + " " + run.label});
        link.addEventListener("click", function (e) { e.preventDefault(); open(run.id); });
        var tail = run.error ? " \u2014 " + run.error : run.summary ? " \u2014 " + run.summary.streams +
          " stream(s), exit " + run.summary.exit_status : "";
        list.appendChild(el("li", {"data-run": String(run.id)}, [box, " ", link, tail]));
      });
    });
  }

  function open(id) {
    fetch("api/runs/" + id).then(function (r) { return r.json(); }).then(function (run) {
      if (run.data) PW.render(view, run.data); else status(run.error || "no report", true);
    });
  }

  function headerKeys(root) {
    var out = {};
    root.querySelectorAll(".pw-stream").forEach(function (sec) {
      sec.querySelectorAll("table.pw-headers tr").forEach(function (tr) {
        out[sec.getAttribute("data-stream") + "|" + tr.parentNode.parentNode.getAttribute("data-map") + "|" +
            tr.textContent] = tr;
      });
    });
    return out;
  }

  function compare() {
    var ids = Array.prototype.map.call(document.querySelectorAll(".ui-pick:checked"), function (b) { return b.value; });
    Promise.all(ids.map(function (id) { return fetch("api/runs/" + id).then(function (r) { return r.json(); }); }))
      .then(function (runs) {
        view.textContent = "";
        var panes = runs.map(function () { return el("div", {"class": "ui-pane"}); });
        view.appendChild(el("div", {"class": "ui-compare"}, panes));
        runs.forEach(function (run, i) { if (run.data) PW.render(panes[i], run.data); });
        var a = headerKeys(panes[0]), b = headerKeys(panes[1]);
        Object.keys(a).forEach(function (k) { if (!(k in b)) a[k].classList.add("ui-differs"); });
        Object.keys(b).forEach(function (k) { if (!(k in a)) b[k].classList.add("ui-differs"); });
      });
  }

  function connect() {
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onmessage = function (m) {
      var msg = JSON.parse(m.data);
      if (msg.type === "started") {
        current = msg.id; append = PW.live(view); status("run #" + msg.id + ": running " + msg.label);
      } else if (msg.type === "event" && msg.id === current && append) {
        append(msg.event);
      } else if (msg.type === "done" && msg.id === current) {
        PW.render(view, msg.data); status("run #" + msg.id + ": done"); history();
      } else if (msg.type === "error" && msg.id === current) {
        status("run #" + msg.id + ": " + msg.message, true); history();
      }
    };
    ws.onclose = function () { setTimeout(connect, 1000); };
    ws.onopen = function () { document.body.setAttribute("data-connected", "yes"); };
  }

  $("ui-send").addEventListener("click", function () {
    status("sending\u2026");
    fetch("api/runs", {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(spec())})
      .then(function (r) { return r.json(); })
      .then(function (r) { if (r.error) status(r.error, true); });
  });
  $("ui-compare").addEventListener("click", compare);

  fetch("api/files").then(function (r) { return r.json(); }).then(function (f) {
    fill($("ui-plugin"), f.plugins, f.plugins.indexOf("example/myproject.wasm") >= 0 ? "example/myproject.wasm" : null);
    fill($("ui-runtime"), f.runtimes);
    fill($("ui-file"), f.traffic);
    document.body.setAttribute("data-ready", "yes");
  });
  history();
  connect();
})();
