#!/usr/bin/env bash
# Vendor the page's JS/CSS into the package, so nothing is fetched from a CDN at run time:
#   Leaflet 1.9.4 (the map page) and swagger-ui-dist 5.35.0 (the /docs page; FastAPI's default loads it from a CDN).
# Provenance: the official npm tarballs (`npm pack <name>@<version>`), unpacked; only the files served are kept,
# with each package's LICENSE. Run from the repository root: scripts/vendor_leaflet.sh
set -euo pipefail
LEAFLET=1.9.4
SWAGGER=5.35.0
STATIC=src/geotower/retrieve/static
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

unpack() {  # unpack NAME VERSION -> $WORK/NAME/package
  mkdir -p "$WORK/$1"
  (cd "$WORK/$1" && npm pack "$1@$2" --silent >/dev/null && tar -xzf ./*.tgz)
}

unpack leaflet "$LEAFLET"
DEST=$STATIC/leaflet
mkdir -p "$DEST/images"
cp "$WORK/leaflet/package/dist/leaflet.js" "$WORK/leaflet/package/dist/leaflet.css" "$DEST/"
cp "$WORK/leaflet/package/dist/images/"*.png "$DEST/images/"
cp "$WORK/leaflet/package/LICENSE" "$DEST/LICENSE"
echo "leaflet@${LEAFLET} (npm)" > "$DEST/VERSION"

unpack swagger-ui-dist "$SWAGGER"
DEST=$STATIC/swagger
mkdir -p "$DEST"
cp "$WORK/swagger-ui-dist/package/swagger-ui-bundle.js" "$WORK/swagger-ui-dist/package/swagger-ui.css" \
   "$WORK/swagger-ui-dist/package/favicon-32x32.png" "$WORK/swagger-ui-dist/package/LICENSE" "$DEST/"
echo "swagger-ui-dist@${SWAGGER} (npm)" > "$DEST/VERSION"

sha256sum "$STATIC"/leaflet/leaflet.js "$STATIC"/leaflet/leaflet.css "$STATIC"/swagger/swagger-ui-bundle.js \
          "$STATIC"/swagger/swagger-ui.css
