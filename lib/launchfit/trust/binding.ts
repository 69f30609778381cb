// Trust binds a host to its app: a deploy folder runs one APP on one PLATFORM, pinned in
// launchify.yml or bound by the first release it installs and kept in state.json; a VERSION must
// offer APP-PLATFORM-VERSION.tar.gz for that binding.
// The whole story: docs/internals.md.
import { VerificationError } from '../../core/errors.ts';
import type { VersionInfo } from '../../release/format/version-file.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import type { HostBinding, LaunchState } from '../deploy-folder/state.ts';

/** What a host is bound to. `prefix` is APP-PLATFORM; app and platform are known when a VERSION (or the config) named them. */
const SUFFIXES = ['.tar.gz', '.tgz'];

/** `my-app-gnu-linux` for (`my-app-gnu-linux-1.2.tar.gz`, `1.2`), or undefined when the file is not PREFIX-VERSION.tar.gz. */
export function releasePrefixOf(file: string, version: string): string | undefined {
  for (const suffix of SUFFIXES) {
    const tail = `-${version}${suffix}`;
    if (file.endsWith(tail) && file.length > tail.length) return file.slice(0, -tail.length);
  }
  return undefined;
}

/**
 * The binding this host already has: the config's pin wins, then what state.json recorded,
 * then (for a folder deployed before bindings were recorded) the current release's file name.
 * Undefined before the first install.
 */
export function hostBindingOf(
  config: LaunchConfig,
  state: LaunchState,
  current: string | undefined,
): HostBinding | undefined {
  const { app, platform } = config.updates;
  if (app && platform) return { prefix: `${app}-${platform}`, app, platform };
  if (state.binding) return state.binding;
  const installed = current ? state.installed[current] : undefined;
  const prefix = installed && releasePrefixOf(installed.file, installed.version);
  return prefix ? { prefix } : undefined;
}

function describe(b: HostBinding): string {
  return b.app && b.platform ? `APP ${b.app} on PLATFORM ${b.platform}` : `${b.prefix}-VERSION.tar.gz releases`;
}

/**
 * Check that `info` offers a release for `host` (when bound) whose file name carries the
 * version of the CURRENT line and agrees with VERSION's APP and PLATFORM lines. Returns the
 * binding to record once it is installed. Throws VerificationError, naming what disagreed.
 */
export function checkReleaseBinding(info: VersionInfo, host: HostBinding | undefined): HostBinding {
  const prefix = releasePrefixOf(info.file, info.version);
  if (!prefix) {
    throw new VerificationError(
      `VERSION offers version ${info.version} but names the file ${info.file}, which is not ` +
        `NAME-${info.version}.tar.gz; the version in VERSION must be the one in the file name. Refusing it.`,
    );
  }
  if (info.app && info.platform && prefix !== `${info.app}-${info.platform}`) {
    throw new VerificationError(
      `VERSION says APP ${info.app} and PLATFORM ${info.platform} but names the file ${info.file}; ` +
        `expected ${info.app}-${info.platform}-${info.version}.tar.gz. Refusing it.`,
    );
  }
  const offered: HostBinding = { prefix, app: info.app, platform: info.platform };
  if (host) {
    const linesDisagree = host.app && info.app && (host.app !== info.app || host.platform !== info.platform);
    if (linesDisagree || prefix !== host.prefix) {
      throw new VerificationError(
        `VERSION offers ${info.file}${info.app ? ` (${describe(offered)})` : ''}, but this host runs ` +
          `${describe(host)}; refusing another app's or platform's release. If the host should switch, set ` +
          `updates.app and updates.platform in launchify.yml.`,
      );
    }
  }
  return { prefix, app: info.app ?? host?.app, platform: info.platform ?? host?.platform };
}
