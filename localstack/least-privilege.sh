# The least-privilege stack's credentials (localstack/up with LAKE_STORE=aws-api). Needs STACK_DIR,
# FUNCTIONS, and infra/ applied to the emulator (STACK_DIR/deploy/terraform.tfstate).

# least_privilege ENDPOINT: (its TLS certificate trusted through AWS_CA_BUNDLE) while the emulator does not yet enforce IAM, creates an administrator
# (for the bridge and the tests), assumes each function's deployed role (its credentials go in
# STACK_DIR/deploy/credentials/FUNCTION as KEY=VALUE words), then turns enforcement on and exports
# the administrator's credentials.
least_privilege() {
  local endpoint="$1" f arn key
  local dir="$STACK_DIR/deploy/credentials"
  mkdir -p "$dir"
  chmod 700 "$dir"
  api() { env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test aws --endpoint-url "$endpoint" "$@"; }
  for f in "${FUNCTIONS[@]}"; do
    arn="$(deployed_role_arn "$f")"
    api sts assume-role --role-arn "$arn" --role-session-name "$f" --duration-seconds 43200 \
      --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text |
      awk '{ printf "AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_SESSION_TOKEN=%s\n", $1, $2, $3 }' \
        >"$dir/$f"
  done
  api iam create-user --user-name clickstream-local-admin >/dev/null
  api iam put-user-policy --user-name clickstream-local-admin --policy-name everything \
    --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
  read -r key AWS_SECRET_ACCESS_KEY < <(api iam create-access-key --user-name clickstream-local-admin \
    --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text)
  export AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY
  unset AWS_SESSION_TOKEN
  # moto's switch: enforcement from the next request on.
  curl -fsS --cacert "$AWS_CA_BUNDLE" -X POST -H 'Content-Type: text/plain' --data-binary 0 "$endpoint/moto-api/reset-auth" >/dev/null
}

# deployed_role_arn FUNCTION: the ARN of FUNCTION's role in the applied state.
deployed_role_arn() {
  python3 - "$STACK_DIR/deploy/terraform.tfstate" "$1" <<'PY'
import json, sys
state, function = json.load(open(sys.argv[1])), sys.argv[2]
arns = [
    i["attributes"]["arn"]
    for r in state["resources"]
    if r["type"] == "aws_iam_role" and r["name"] == "function"
    for i in r["instances"]
    if i["index_key"] == function
]
if not arns:
    sys.exit(f"no role deployed for {function}")
print(arns[0])
PY
}

# function_credentials FUNCTION: FUNCTION's role credentials as KEY=VALUE words, or nothing when
# the stack is not the least-privilege one.
function_credentials() {
  local file="$STACK_DIR/deploy/credentials/$1"
  if [ -f "$file" ]; then cat "$file"; fi
}
