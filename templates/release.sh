#!/bin/sh
# Example release script: `shipkit release REPO --tag TAG` runs this from the repo's root, checked out at
# the tag, with SHIPKIT_REPO (owner/name), SHIPKIT_TAG (e.g. v1.4.0) and SHIPKIT_SHA set.
# Copy it into your repo as release.sh, make it executable and commit it:
#   cp templates/release.sh release.sh && git update-index --add --chmod=+x release.sh
# Its output goes to the repo's logs.txt (`shipkit logs REPO`); its exit code is the release's.
set -eu

: "${SHIPKIT_REPO:?run this through: shipkit release REPO --tag TAG}"
: "${SHIPKIT_TAG:?run this through: shipkit release REPO --tag TAG}"
app=${SHIPKIT_REPO#*/}          # octo/my-app -> my-app
version=${SHIPKIT_TAG#v}        # v1.4.0 -> 1.4.0

echo "releasing $app $version from $SHIPKIT_SHA"

# Build the tagged source.
npm ci --no-audit --no-fund
npm run build

# Pack, sign and publish it for launchfit hosts: tarball and .sig first, VERSION last.
shipkit release publish dist \
  --name "$app" --platform gnu-linux --version "$version" \
  --key /etc/shipkit/release-key.asc --passphrase-file /etc/shipkit/release-key.pass \
  --to /srv/app-updates/"$app" --keep 5

# Optional: tell the fleet to check for the update now instead of at its next poll.
# server-update "$app" --list /etc/server-update/slavelist.txt
