#!/usr/bin/env bash
# Install the AIF Workbench runtime into a prefix (AIFW_HOME): Debian packages (Slurm, munge,
# python3-venv; chromium with --test), a world-readable venv built from Debian's /usr/bin/python3,
# the Python stack and this project, and the course sources (root only, in AIFW_HOME/course-sources).
# Idempotent: a step whose inputs did not change is skipped.
#
#   scripts/install.sh /opt/aifw          # the sandbox runtime
#   scripts/install.sh /opt/aifw-test --test   # the test runtime (adds pytest, playwright, chromium)
set -euo pipefail

HOME_DIR=${1:?usage: scripts/install.sh AIFW_HOME [--test]}
MODE=${2:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV="$HOME_DIR/venv"
say() { echo "[install] $*"; }
quiet_pip() { "$VENV/bin/pip" "$@" 2> >(grep -v "is neither a file nor a directory" >&2); }

if [ "$(id -u)" != 0 ]; then
  echo "scripts/install.sh must run as root (it installs Debian packages and a system-wide prefix)." >&2
  exit 2
fi

# One install at a time per prefix (two test runs, or a test run and a developer, may race here).
mkdir -p "$HOME_DIR"
exec 9>"$HOME_DIR/.install.lock"
flock 9

# --- Debian packages -------------------------------------------------------------------------
# Accounting: slurmdbd + its MariaDB plugin and a MariaDB server (started by the sandbox on its own
# data directory, socket and port; the package's own database is never started or touched).
# REST: slurmrestd with the JWT plugin.
pkgs=(slurmctld slurmd slurm-client munge slurmdbd slurm-wlm-mysql-plugin mariadb-server slurmrestd slurm-wlm-jwt-plugin
      libjwt0 python3-venv python3-dev)
[ "$MODE" = "--test" ] && pkgs+=(chromium fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js for configurable-http-proxy (the machine's own, else Debian's).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "apt-get install nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# --- the venv --------------------------------------------------------------------------------
mkdir -p "$HOME_DIR"
chmod 755 "$HOME_DIR"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV from /usr/bin/python3"
  /usr/bin/python3 -m venv "$VENV"
  quiet_pip install -q --upgrade "pip>=24" "setuptools>=77" wheel
fi

# torch: a CPU machine takes the CPU wheel 2.13.0 (a plain `torch` would pull a multi-GB CUDA build).
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    say "GPU machine: installing torch from the project's range"
  else
    say "installing torch==2.13.0 (CPU)"
    quiet_pip install -q "torch==2.13.0"
  fi
fi

# --- the session panel (JupyterLab 4 extension, extensions/session_panel/) -------------------
# Built from source before the package (whose data-files carry the built labextension), in
# AIFW_HOME/session-panel-build (its node_modules stay out of the checkout): npm ci from the committed
# package-lock.json, again only when package.json or the lock changed; then tsc and jupyter-builder
# (`npm run build`), again only when the extension's sources changed. The built labextension is copied
# into the checkout's extensions/session_panel/labextension/ (git-ignored, like every build output).
PANEL="$REPO/extensions/session_panel"
PANEL_BUILD="$HOME_DIR/session-panel-build"
if [ ! -x "$VENV/bin/jupyter-builder" ]; then
  say "installing jupyter-builder (builds the session panel)"
  quiet_pip install -q "jupyter-builder>=1.3,<2"
fi
mkdir -p "$PANEL_BUILD"
rm -rf "$PANEL_BUILD/src" "$PANEL_BUILD/style"
cp -r "$PANEL"/{src,style,package.json,package-lock.json,tsconfig.json} "$PANEL_BUILD"/
npm_hash=$(cat "$PANEL/package.json" "$PANEL/package-lock.json" | sha256sum | cut -c1-16)
if [ "$(cat "$PANEL_BUILD/node_modules/.aifw-npm" 2>/dev/null)" != "$npm_hash" ]; then
  say "installing the session panel's npm packages (npm ci)"
  (cd "$PANEL_BUILD" && npm ci --silent --no-audit --no-fund >/dev/null)
  echo "$npm_hash" > "$PANEL_BUILD/node_modules/.aifw-npm"
fi
panel_hash=$( (cd "$PANEL" && find src style package.json package-lock.json tsconfig.json -type f | sort \
  | xargs sha256sum; echo "$npm_hash") | sha256sum | cut -c1-16)
# One copy into the checkout at a time (the sandbox's and the tests' installs share the checkout).
exec 8>"$PANEL/.build.lock"
flock 8
if [ "$(cat "$PANEL/labextension/.aifw-src" 2>/dev/null)" != "$panel_hash" ]; then
  say "building the session panel (tsc, jupyter-builder)"
  (cd "$PANEL_BUILD" && rm -rf lib labextension tsconfig.tsbuildinfo \
    && PATH="$VENV/bin:$PATH" npm run --silent build >/dev/null)
  echo "$panel_hash" > "$PANEL_BUILD/labextension/.aifw-src"
  rm -rf "$PANEL/labextension.new" && cp -r "$PANEL_BUILD/labextension" "$PANEL/labextension.new"
  rm -rf "$PANEL/labextension" && mv "$PANEL/labextension.new" "$PANEL/labextension"
fi
flock -u 8
exec 8>&-

extra=""
[ "$MODE" = "--test" ] && extra="[test]"
deps_stamp="$VENV/.aifw-deps-$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)${extra:+-test}"
if [ ! -f "$deps_stamp" ]; then
  say "installing the Python stack (JupyterHub, batchspawner, JupyterLab, nbgrader, dask-jobqueue, ...)"
  quiet_pip install -q "$REPO$extra"
  rm -f "$VENV"/.aifw-deps-*
  touch "$deps_stamp"
fi

# jsonschema imports rfc3987_syntax (from jupyter_events' jsonschema[format-nongpl]) for its `iri` format
# check, which no Jupyter schema uses; it builds Lark parsers at import: 1.5 s of every server start and
# nbgrader command (docs/benchmarks.md, benchmark 5). jsonschema skips the check when it is absent.
if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('rfc3987_syntax') is None)"; then
  say "removing rfc3987-syntax (1.5 s of every server start; no Jupyter schema checks the iri format)"
  quiet_pip uninstall -q -y rfc3987-syntax
fi

# The project itself, non-editable (learners' jobs import it from the prefix), when its files changed.
src_hash=$(cd "$REPO" && find core hub_config spawners extensions courses notebooks pyproject.toml -type f \
  -not -path '*/__pycache__/*' -not -path '*/node_modules/*' -not -path 'extensions/session_panel/lib/*' \
  -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.aifw-src" 2>/dev/null)" != "$src_hash" ]; then
  say "installing aif-workbench from $REPO"
  build=$(mktemp -d)
  cp -r "$REPO"/{core,hub_config,spawners,courses,notebooks,pyproject.toml,README.md} "$build"/
  # extensions/ without the session panel's node_modules (200 MB the package does not take)
  tar -C "$REPO" --exclude=node_modules --exclude=.build.lock -cf - extensions | tar -C "$build" -xf -
  quiet_pip install -q --no-deps --no-build-isolation --force-reinstall "$build"
  rm -rf "$build"
  echo "$src_hash" > "$VENV/.aifw-src"
fi

# The proxy: the standard Node configurable-http-proxy (streams the spawn-progress events as they come).
CHP_VERSION=5.3.0
if [ "$("$HOME_DIR/proxy/node_modules/.bin/configurable-http-proxy" --version 2>/dev/null)" != "$CHP_VERSION" ]; then
  say "installing configurable-http-proxy $CHP_VERSION (npm)"
  mkdir -p "$HOME_DIR/proxy"
  npm install --silent --no-audit --no-fund --prefix "$HOME_DIR/proxy" "configurable-http-proxy@$CHP_VERSION" >/dev/null
fi
chmod -R a+rX "$HOME_DIR/proxy"

# JupyterLab: no news pop-up (it also reaches out to the network).
mkdir -p "$VENV/share/jupyter/lab/settings"
cat > "$VENV/share/jupyter/lab/settings/overrides.json" <<'JSON'
{
  "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}
}
JSON
chmod -R a+rX "$HOME_DIR/venv"

# --- the course sources ----------------------------------------------------------------------
# They hold the answers and hidden tests, so they are not part of the package (aifw.courses is code
# only): every course folder of the checkout (courses/<id>/ with a course.yaml) goes to
# $HOME_DIR/course-sources/<id>/, a folder only root may enter. The catalogue reads them there
# (aifw.courses.catalogue.default_root); learners get nbgrader's release copies (share/courses).
SOURCES="$HOME_DIR/course-sources"
courses=()
for course in "$REPO"/courses/*/; do
  [ -f "$course/course.yaml" ] && courses+=("${course%/}")
done
courses_hash=none
[ ${#courses[@]} -gt 0 ] && courses_hash=$(cd "$REPO/courses" && find "${courses[@]##*/}" -type f \
  -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha256sum \
  | sha256sum | cut -c1-16)
if [ "$(cat "$SOURCES/.aifw-src" 2>/dev/null)" != "$courses_hash" ]; then
  say "installing the course sources (${courses[*]##*/}) into $SOURCES (root only)"
  rm -rf "$SOURCES.new" "$SOURCES.old"
  mkdir -m 0700 "$SOURCES.new"
  [ ${#courses[@]} -gt 0 ] && cp -RL "${courses[@]}" "$SOURCES.new"/
  find "$SOURCES.new" \( -name __pycache__ -o -name .ipynb_checkpoints \) -prune -exec rm -rf {} +
  echo "$courses_hash" > "$SOURCES.new/.aifw-src"
  [ -e "$SOURCES" ] && mv "$SOURCES" "$SOURCES.old"
  mv "$SOURCES.new" "$SOURCES"
  rm -rf "$SOURCES.old"
fi
chown -R root:root "$SOURCES"
chmod -R go-rwx "$SOURCES"
say "runtime ready in $HOME_DIR"
