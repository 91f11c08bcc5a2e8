// geotower map page: no tile layer (nothing is fetched from the internet); every place is a small grey circle so the
// geography is visible, recommended places are highlighted markers with name + score tooltips.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const map = L.map("map", { zoomSnap: 0.25, attributionControl: false }).setView([0, 0], 2);
  const canvas = L.canvas({ padding: 0.2 });
  const svg = L.svg();
  const placesLayer = L.layerGroup().addTo(map);
  const recLayer = L.layerGroup().addTo(map);
  const state = { point: null, pointMarker: null, circle: null, liked: new Map() };

  function setStatus(text) { $("status").textContent = text; }
  function label(it) { return it.name ? it.name : it.item_id; }
  // tooltips and popups take HTML: escape names that come from the data
  function esc(s) { const d = document.createElement("div"); d.textContent = s; return d.innerHTML; }

  async function getJSON(url, options) {
    const res = await fetch(url, options);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      throw new Error(res.status + ": " + detail);
    }
    return body;
  }

  function toggleLike(it, marker) {
    if (state.liked.has(it.item_id)) {
      state.liked.delete(it.item_id);
      marker.setStyle({ color: "#888", fillColor: "#aaa" });
    } else {
      state.liked.set(it.item_id, it);
      marker.setStyle({ color: "#1a7f37", fillColor: "#2da44e" });
    }
    const names = Array.from(state.liked.values()).map(label);
    $("liked").textContent = "liked: " + (names.length ? names.join(", ") : "none");
  }

  async function loadPlaces() {
    const page = await getJSON("/items?limit=20000");
    const bounds = [];
    for (const it of page.items) {
      if (it.lat === null || it.lon === null) continue;
      const m = L.circleMarker([it.lat, it.lon], {
        renderer: canvas, radius: 3, weight: 1, color: "#888", fillColor: "#aaa", fillOpacity: 0.6,
      });
      m.bindTooltip(esc(label(it)));
      m.on("click", (e) => { L.DomEvent.stopPropagation(e); toggleLike(it, m); });
      m.addTo(placesLayer);
      bounds.push([it.lat, it.lon]);
    }
    if (bounds.length) map.fitBounds(bounds, { padding: [20, 20] });
    setStatus(page.total + " places");
  }

  async function loadUsers() {
    const page = await getJSON("/users?limit=500");
    const sel = $("user");
    for (const u of page.users) {
      const opt = document.createElement("option");
      opt.value = u; opt.textContent = u;
      sel.appendChild(opt);
    }
  }

  function setPoint(latlng) {
    state.point = latlng;
    if (state.pointMarker) state.pointMarker.remove();
    state.pointMarker = L.marker(latlng).addTo(map);
    $("point").textContent = "point: " + latlng.lat.toFixed(5) + ", " + latlng.lng.toFixed(5);
  }

  function drawCircle(radius) {
    if (state.circle) { state.circle.remove(); state.circle = null; }
    if (state.point && radius > 0) {
      state.circle = L.circle(state.point, { radius: radius * 1000, renderer: svg, color: "#0969da", fill: false })
        .addTo(map);
    }
  }

  function request() {
    const body = { k: parseInt($("k").value || "10", 10) };
    const user = $("user").value;
    if (user) body.user_id = user;
    if (state.liked.size) body.liked = Array.from(state.liked.keys());
    if (state.point) { body.lat = state.point.lat; body.lon = ((state.point.lng + 540) % 360) - 180; }
    const radius = parseFloat($("radius").value);
    if (state.point && radius > 0) body.radius_km = radius;
    drawCircle(body.radius_km || 0);
    return body;
  }

  function showResults(res) {
    recLayer.clearLayers();
    const list = $("results");
    list.innerHTML = "";
    res.items.forEach((it, i) => {
      const text = label(it) + " (score " + it.score.toFixed(3) +
        (it.distance_km !== null ? ", " + it.distance_km.toFixed(2) + " km" : "") + ")";
      const li = document.createElement("li");
      li.textContent = text;
      list.appendChild(li);
      if (it.lat === null || it.lon === null) return;
      L.circleMarker([it.lat, it.lon], {
        renderer: svg, radius: 8, weight: 2, color: "#b35900", fillColor: "#ff8c00", fillOpacity: 0.9,
        className: "rec-marker",
      }).bindTooltip(esc((i + 1) + ". " + text)).bindPopup(esc((i + 1) + ". " + text)).addTo(recLayer);
    });
    setStatus(res.items.length + " recommendations (" + res.mode + ")" + (res.note ? ": " + res.note : ""));
    document.body.dataset.recommended = String(res.items.length);
  }

  async function recommend() {
    setStatus("loading...");
    try {
      const res = await getJSON("/recommend", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request()),
      });
      showResults(res);
    } catch (err) {
      recLayer.clearLayers();
      $("results").innerHTML = "";
      setStatus("error " + err.message);
    }
  }

  map.on("click", (e) => { setPoint(e.latlng); recommend(); });
  $("user").addEventListener("change", recommend);
  $("go").addEventListener("click", recommend);
  $("clear").addEventListener("click", () => {
    if (state.pointMarker) state.pointMarker.remove();
    if (state.circle) state.circle.remove();
    state.point = state.pointMarker = state.circle = null;
    state.liked.clear();
    placesLayer.eachLayer((m) => m.setStyle({ color: "#888", fillColor: "#aaa" }));
    $("point").textContent = "point: none";
    $("liked").textContent = "liked: none";
  });
  Promise.all([loadPlaces(), loadUsers()]).then(() => { document.body.dataset.ready = "1"; })
    .catch((err) => setStatus("error " + err.message));
})();
