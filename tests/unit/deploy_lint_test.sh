#!/usr/bin/env bash
# deploy/ansible: yamllint (deploy/ansible/.yamllint) and ansible-lint with the production
# profile, offline (no Galaxy: the role needs only ansible.builtin and ansible.posix, both in
# Debian's ansible package). Both must be clean. Exit 77 (skip) if the tools are missing.
set -euo pipefail
dir=$(cd "$(dirname "$0")/../../deploy/ansible" && pwd)
for tool in yamllint ansible-lint; do
	command -v "$tool" >/dev/null || { echo "skip: $tool not installed (scripts/install-deps.sh)"; exit 77; }
done
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
cd "$dir"
echo "== yamllint"
yamllint --strict .
echo "== ansible-lint --offline (production profile)"
# A private HOME keeps its caches out of the machine's; ANSIBLE_CONFIG is the project's.
HOME=$home ANSIBLE_CONFIG=$dir/ansible.cfg ansible-lint --offline --profile production --nocolor \
	--strict
echo "deploy lint: clean"
