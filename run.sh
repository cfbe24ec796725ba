#!/usr/bin/env bash
# resetlens developer entry point. Each command does its own set-up (apt, venv, pip).
#   ./run.sh demo    analyse the bundled real captures; HTML/JSON/Markdown reports under reports/
#   ./run.sh test    the whole test suite (what CI runs)
#   ./run.sh setup   only the set-up
set -euo pipefail
cd "$(dirname "$0")"

# System tools: capture reading/verification, the reset lab (namespaces, proxies, firewall), the browser test.
APT_PACKAGES=(tcpdump tshark nginx-light haproxy nftables iproute2 openssl conntrack
              systemd-journal-remote chromium procps time)

setup_apt() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "run.sh: installing system packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    # nginx/haproxy packages start system services; the lab runs its own instances in namespaces.
    for svc in nginx haproxy; do $sudo service "$svc" stop >/dev/null 2>&1 || true; done
}

setup_venv() {
    local py="${PYTHON:-python3}"
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    local stamp=.venv/.resetlens-installed want
    # A changed dependency list or C accelerator source reinstalls (the extensions are rebuilt then).
    want=$(cat pyproject.toml setup.py resetlens/*/*.c | sha256sum | cut -c1-16)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import resetlens" 2>/dev/null; then
        .venv/bin/pip install -q --upgrade pip
        .venv/bin/pip install -q -e '.[dev]'
        echo "$want" > "$stamp"
    fi
    # Bytecode up front, as a regular pip install leaves it: with PYTHONDONTWRITEBYTECODE set, an editable
    # install would otherwise compile every module again on every run (~60 ms per command).
    .venv/bin/python -m compileall -q resetlens >/dev/null
}

setup() { setup_apt; setup_venv; }

demo() {
    setup
    [ -d fixtures/lab/mixed ] || { echo "run.sh: fixtures/lab/mixed is missing"; exit 2; }
    mkdir -p reports
    # One incident in full: terminal summary, HTML (with pcap snippets), JSON, Markdown.
    .venv/bin/resetlens analyze fixtures/lab/mixed \
        --html reports/mixed.html --json reports/mixed.json --md reports/mixed.md
    # Every lab bundle as an archive: per-bundle reports, index page, DuckDB database.
    .venv/bin/resetlens batch fixtures/lab --db reports/lab-archive.duckdb --out reports/archive
    echo "run.sh: open reports/mixed.html (one incident) or reports/archive/index.html (every lab bundle)"
}

tests() {
    setup
    mkdir -p test-output
    .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
}

case "${1:-}" in
    demo) demo ;;
    test) shift; tests "$@" ;;
    setup) setup ;;
    *) echo "usage: ./run.sh demo | test [pytest args] | setup" >&2; exit 2 ;;
esac
