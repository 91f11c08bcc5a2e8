// geotower map page: no tile layer (nothing is fetched from the internet). The surroundings (roads, water, land use,
// buildings) come from the service as GeoJSON built from the run's OSM extract; every place is a small grey circle,
// grouped into count bubbles when the catalogue is large; recommended places are highlighted markers whose popups
// say why they were recommended.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const map = L.map("map", { zoomSnap: 0.25, attributionControl: false }).setView([0, 0], 2);
  window.geotowerMap = map;  // for scripted checks (the browser test)
  const canvas = L.canvas({ padding: 0.2 });
  const svg = L.svg();
  const placesLayer = L.layerGroup().addTo(map);
  const recLayer = L.layerGroup().addTo(map);
  const state = { point: null, pointMarker: null, circle: null, liked: new Map(), places: [] };
  const params = new URLSearchParams(window.location.search);
  const CLUSTER_MIN = parseInt(params.get("cluster") || "1500", 10);  // cluster catalogues larger than this
  const CLUSTER_PX = 56;  // grid cell of a count bubble, in screen pixels
  const baseRenderer = L.canvas({ padding: 0.3 });
  const STYLES = {
    landuse: { stroke: false, fillColor: "#d7e8c6", fillOpacity: 0.8 },
    water: { color: "#7fb0dc", weight: 1, fillColor: "#a9cdec", fillOpacity: 1 },
    waterways: { color: "#7fb0dc", weight: 2 },
    railways: { color: "#8c8c8c", weight: 1.5, dashArray: "4 3" },
    roads: { color: "#b5b0a8", weight: 2 },
    buildings: { color: "#c4b8ad", weight: 0.5, fillColor: "#e2d9d0", fillOpacity: 1 },
  };

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
      marker.setStyle({ color: "#666", fillColor: "#999" });
    } else {
      state.liked.set(it.item_id, it);
      marker.setStyle({ color: "#1a7f37", fillColor: "#2da44e" });
    }
    const names = Array.from(state.liked.values()).map(label);
    $("liked").textContent = "liked: " + (names.length ? names.join(", ") : "none");
  }

  function placeMarker(it) {
    const liked = state.liked.has(it.item_id);
    const m = L.circleMarker([it.lat, it.lon], {
      renderer: canvas, radius: 3, weight: 1, color: liked ? "#1a7f37" : "#666",
      fillColor: liked ? "#2da44e" : "#999", fillOpacity: 0.7,
    });
    m.bindTooltip(esc(label(it)));
    m.on("click", (e) => { L.DomEvent.stopPropagation(e); toggleLike(it, m); });
    return m;
  }

  function bubble(cell) {
    const size = cell.n < 100 ? 30 : cell.n < 1000 ? 36 : 44;
    const icon = L.divIcon({ className: "cluster", html: "<span>" + cell.n + "</span>", iconSize: [size, size] });
    const m = L.marker([cell.lat / cell.n, cell.lon / cell.n], { icon: icon, keyboard: false });
    m.on("click", () => map.fitBounds(cell.bounds, { padding: [30, 30], maxZoom: map.getZoom() + 3 }));
    return m;
  }

  // grid clustering in screen space, recomputed on zoom: small catalogues (and deep zooms) show every place
  function drawPlaces() {
    placesLayer.clearLayers();
    const zoom = map.getZoom();
    if (state.places.length <= CLUSTER_MIN || zoom >= 18) {
      for (const it of state.places) placeMarker(it).addTo(placesLayer);
      document.body.dataset.clusters = "0";
      return;
    }
    const cells = new Map();
    for (const it of state.places) {
      const p = map.project([it.lat, it.lon], zoom);
      const key = Math.floor(p.x / CLUSTER_PX) + ":" + Math.floor(p.y / CLUSTER_PX);
      let c = cells.get(key);
      if (!c) { c = { n: 0, lat: 0, lon: 0, items: [], bounds: L.latLngBounds([]) }; cells.set(key, c); }
      c.n += 1; c.lat += it.lat; c.lon += it.lon; c.items.push(it); c.bounds.extend([it.lat, it.lon]);
    }
    let bubbles = 0;
    for (const c of cells.values()) {
      if (c.n === 1) { placeMarker(c.items[0]).addTo(placesLayer); continue; }
      bubble(c).addTo(placesLayer);
      bubbles += 1;
    }
    document.body.dataset.clusters = String(bubbles);
  }

  async function loadPlaces() {
    const page = await getJSON("/items?limit=20000");
    state.places = page.items.filter((it) => it.lat !== null && it.lon !== null);
    const bounds = state.places.map((it) => [it.lat, it.lon]);
    if (bounds.length) map.fitBounds(bounds, { padding: [20, 20] });
    drawPlaces();
    map.on("zoomend", drawPlaces);
    setStatus(page.total + " places");
  }

  async function loadSurroundings() {
    const res = await fetch("/surroundings");
    if (!res.ok) { document.body.dataset.surroundings = "0"; return; }
    const doc = await res.json();
    const overlays = {};
    let drawn = 0;
    for (const [name, fc] of Object.entries(doc.layers)) {
      if (!fc.features.length) continue;
      const layer = L.geoJSON(fc, { renderer: baseRenderer, interactive: false, style: () => STYLES[name] || {} });
      layer.addTo(map);
      overlays[name] = layer;
      drawn += fc.features.length;
    }
    L.control.layers(null, overlays, { collapsed: true, position: "topright" }).addTo(map);
    $("attribution").textContent = doc.attribution + " (" + doc.source + ")";
    document.body.dataset.surroundings = String(drawn);
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
    const body = { k: parseInt($("k").value || "10", 10), explain: true };
    const user = $("user").value;
    if (user) body.user_id = user;
    if (state.liked.size) body.liked = Array.from(state.liked.keys());
    if (state.point) { body.lat = state.point.lat; body.lon = ((state.point.lng + 540) % 360) - 180; }
    const radius = parseFloat($("radius").value);
    if (state.point && radius > 0) body.radius_km = radius;
    drawCircle(body.radius_km || 0);
    return body;
  }

  // the popup of one recommendation: what it is and why (liked places, distance, surroundings features)
  function popup(i, it) {
    const r = it.reasons || {};
    let html = "<div class='why'><b>" + esc((i + 1) + ". " + label(it)) + "</b><br>score " + it.score.toFixed(3);
    if (it.distance_km !== null) html += ", " + it.distance_km.toFixed(2) + " km from the point";
    if (r.text) html += "<p class='reason'>" + esc(r.text) + "</p>";
    const rows = [];
    for (const l of r.liked || []) rows.push("liked " + esc(l.name || l.item_id) + ": " + l.contribution.toFixed(3));
    for (const f of r.features || []) {
      rows.push(esc(f.feature) + (f.value_sd !== undefined ? " (" + f.value_sd.toFixed(1) + " sd)" : "") + ": " +
        f.contribution.toFixed(3));
    }
    if (r.popularity !== null && r.popularity !== undefined) rows.push("recent popularity: " + r.popularity.toFixed(3));
    if (rows.length) html += "<ul><li>" + rows.join("</li><li>") + "</li></ul>";
    if (r.exact === false && (r.liked || []).length) html += "<i>approximate (towers with hidden layers)</i>";
    return html + "</div>";
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
      }).bindTooltip(esc((i + 1) + ". " + text)).bindPopup(popup(i, it), { maxWidth: 320 }).addTo(recLayer);
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
    drawPlaces();
    $("point").textContent = "point: none";
    $("liked").textContent = "liked: none";
  });
  Promise.all([loadSurroundings(), loadPlaces(), loadUsers()]).then(() => { document.body.dataset.ready = "1"; })
    .catch((err) => setStatus("error " + err.message));
})();
