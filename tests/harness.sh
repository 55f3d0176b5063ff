# Shared by the shell tests: counters, groups and the check helper.
# Sourced after the script has set $groups (" name name " or "  " for all).
passed=0 failed=0 skipped=0 group=setup
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); printf 'FAIL [%s] %s\n' "$group" "$*"; }
skip() { skipped=$((skipped + 1)); printf 'SKIP [%s] %s\n' "$group" "$*"; }
# check WHAT COMMAND...: passes when COMMAND succeeds.
check() { local what=$1; shift; if "$@"; then pass; else fail "$what"; fi; }
wanted() { [ "$groups" = "  " ] || [[ "$groups" == *" $1 "* ]]; }
begin() { group=$1; group_start=$SECONDS; }
end() { echo "group $group: $((SECONDS - group_start)) s"; }
