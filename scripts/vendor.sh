#!/usr/bin/env bash
# Vendor the dashboard's front-end files from the npm registry (never a CDN) into
# web/dashboard/static/vendor/, and rewrite that folder's README.md with the
# versions and the sha256 of every file. To update: change a version (and its
# tarball integrity, from `npm view <pkg>@<version> dist.integrity`) below, run
# this script, and commit the changed files.
set -euo pipefail
cd "$(dirname "$0")/.."

# name  version  npm dist.integrity (checked against the packed tarball)
HTMX_PKG=htmx.org
HTMX_VERSION=2.0.11
HTMX_INTEGRITY='sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA=='
UPLOT_PKG=uplot
UPLOT_VERSION=1.6.32
UPLOT_INTEGRITY='sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=='

DEST=web/dashboard/static/vendor
command -v npm >/dev/null || { echo "npm is required (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch PKG VERSION INTEGRITY: `npm pack` the exact version into $tmp/PKG/package/.
fetch() {
  local pkg=$1 version=$2 integrity=$3 dir="$tmp/$1" tgz actual
  mkdir -p "$dir"
  tgz=$(cd "$dir" && npm pack --silent "$pkg@$version")
  actual="sha512-$(openssl dgst -sha512 -binary "$dir/$tgz" | base64 -w0)"
  if [[ "$actual" != "$integrity" ]]; then
    echo "$pkg@$version: tarball integrity $actual, expected $integrity" >&2
    exit 1
  fi
  tar -xzf "$dir/$tgz" -C "$dir"
}

fetch "$HTMX_PKG" "$HTMX_VERSION" "$HTMX_INTEGRITY"
fetch "$UPLOT_PKG" "$UPLOT_VERSION" "$UPLOT_INTEGRITY"

mkdir -p "$DEST"
# source (inside the npm package)  ->  file name in $DEST
install -m 0644 "$tmp/$HTMX_PKG/package/dist/htmx.min.js" "$DEST/htmx.min.js"
install -m 0644 "$tmp/$HTMX_PKG/package/LICENSE" "$DEST/htmx.LICENSE"
install -m 0644 "$tmp/$UPLOT_PKG/package/dist/uPlot.iife.min.js" "$DEST/uPlot.iife.min.js"
install -m 0644 "$tmp/$UPLOT_PKG/package/dist/uPlot.min.css" "$DEST/uPlot.min.css"
install -m 0644 "$tmp/$UPLOT_PKG/package/LICENSE" "$DEST/uPlot.LICENSE"

files=(htmx.min.js htmx.LICENSE uPlot.iife.min.js uPlot.min.css uPlot.LICENSE)
echo "sha256 of the vendored files:"
(cd "$DEST" && sha256sum "${files[@]}")

{
  cat <<EOF
# Vendored front-end files

Copied from the npm registry's packages (never a CDN) by \`scripts/vendor.sh\`;
run scripts/vendor.sh to update (change the pinned versions in it first). Do not edit
these files by hand.

| package | version | license | files |
| --- | --- | --- | --- |
| [htmx.org](https://www.npmjs.com/package/htmx.org) | $HTMX_VERSION | BSD-0-Clause (htmx.LICENSE) | htmx.min.js (from dist/htmx.min.js) |
| [uplot](https://www.npmjs.com/package/uplot) | $UPLOT_VERSION | MIT (uPlot.LICENSE) | uPlot.iife.min.js, uPlot.min.css (from dist/) |

## sha256

\`\`\`
EOF
  (cd "$DEST" && sha256sum "${files[@]}")
  echo '```'
} >"$DEST/README.md"
echo "wrote $DEST/README.md"
