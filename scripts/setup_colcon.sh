#!/usr/bin/env bash
# Install colcon from the package index into build/colcon, for the project's Python (.venv),
# and print the path of a `colcon` command that uses it — safe to run again (a second run
# takes a moment). CI builds the ROS 2 workspace with it (test/test_colcon.py).
#
# colcon-core needs setuptools < 80 and the project venv has a newer one, so colcon and its
# dependencies go to their own folder (pip --target), put first on PYTHONPATH only while colcon
# runs. colcon runs setup.py with the Python that runs colcon, and that Python becomes the
# shebang of the installed executables: here the project venv's, with torch and rclpy, as in a
# ROS 2 install where colcon, rclpy and the pip-installed dependencies share one Python.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=$(cd "$(dirname "${VENV:-.venv}/bin/python")" && pwd)/python
COLCON_HOME=$(mkdir -p "${COLCON_HOME:-build/colcon}" && cd "${COLCON_HOME:-build/colcon}" && pwd)
PACKAGES="colcon-core>=0.21 colcon-ros>=0.5 colcon-python-setup-py>=0.2.9 colcon-common-extensions>=0.3 ros-ament-package>=0.17"

[ -x "$PYTHON" ] || { echo "[colcon] no project venv at ${VENV:-.venv}: run 'make setup' first" >&2; exit 1; }
stamp() { { cat scripts/setup_colcon.sh; echo "$PYTHON"; } | sha256sum | cut -d' ' -f1; }

if [ -f "$COLCON_HOME/.stamp" ] && [ "$(cat "$COLCON_HOME/.stamp")" = "$(stamp)" ]; then
  echo "$COLCON_HOME/colcon"
  exit 0
fi

echo "[colcon] installing colcon into $COLCON_HOME for $PYTHON" >&2
rm -rf "$COLCON_HOME/packages" "$COLCON_HOME/colcon" "$COLCON_HOME/.stamp"
log=$(mktemp)
# shellcheck disable=SC2086
if ! "$PYTHON" -m pip install --disable-pip-version-check -q --target "$COLCON_HOME/packages" $PACKAGES >"$log" 2>&1; then
  cat "$log" >&2
  echo "[colcon] 'pip install --target $COLCON_HOME/packages $PACKAGES' failed (see above)" >&2
  exit 1
fi
rm -f "$log"
cat > "$COLCON_HOME/colcon" <<WRAPPER
#!/usr/bin/env bash
# colcon from $COLCON_HOME/packages, run by $PYTHON (written by scripts/setup_colcon.sh)
export PYTHONPATH="$COLCON_HOME/packages\${PYTHONPATH:+:\$PYTHONPATH}"
exec "$PYTHON" -c 'import sys; from colcon_core.command import main; sys.argv[0] = "colcon"; sys.exit(main())' "\$@"
WRAPPER
chmod +x "$COLCON_HOME/colcon"
"$COLCON_HOME/colcon" --help >/dev/null || { echo "[colcon] $COLCON_HOME/colcon does not run" >&2; exit 1; }
stamp > "$COLCON_HOME/.stamp"
echo "$COLCON_HOME/colcon"
