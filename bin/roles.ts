// The command line's catalogue: each role, one line on what it is, and the
// configuration rows it reads (the same tables its loader reads through), for
// `--help` and for the warning about TTEOK_* names nothing reads. Kept free of
// the roles' own code so `--help` loads no more than these tables.
import { envVar, type EnvTable } from '../common/env-config.ts';
import { envRows, type EnvSection } from '../common/env-help.ts';
import { CLAIM_ENV, KUBE_VIEW_ENV, POD_ENV, PROCESS_ENV, TOOLING_NAMES } from '../common/shared-env.ts';
import { CONTROLLER_ENV } from '../controller/config.ts';
import { GATEWAY_ENV } from '../gateway/config.ts';
import { INGEST_ENV, INGEST_POD_ENV } from '../ingest/config.ts';
import { TRANSCODER_ENV } from '../transcoder/config.ts';

export const LOCAL_ENV = {
  home: envVar.string('TTEOK_LOCAL_HOME', '.tteok', 'where local mode keeps its key file, media volume and origin'),
} satisfies EnvTable;

export type RoleName = 'ingest' | 'gateway' | 'controller' | 'transcoder' | 'local';

export interface Role {
  summary: string;
  sections: EnvSection[];
}

const everyRole: EnvSection = { title: 'Every role', tables: [PROCESS_ENV] };

export const ROLES: Record<RoleName, Role> = {
  ingest: {
    summary: 'accepts RTMP(S) publishes and stores CMAF HLS in S3 (or a directory)',
    sections: [
      { title: 'Ingest', tables: [INGEST_ENV] },
      { title: 'With TTEOK_KEY_SOURCE=kubernetes (and KUBECONFIG outside a pod)', tables: [KUBE_VIEW_ENV, POD_ENV, CLAIM_ENV, INGEST_POD_ENV] },
      everyRole,
    ],
  },
  gateway: {
    summary: 'answers where to play a stream (HTTP API, /openapi.json), metrics, the player page',
    sections: [
      { title: 'Gateway', tables: [GATEWAY_ENV] },
      { title: 'With TTEOK_VIEW=kubernetes (and KUBECONFIG outside a pod)', tables: [KUBE_VIEW_ENV] },
      everyRole,
    ],
  },
  controller: {
    summary: 'reconciles LiveStreams: keys, status, ingest capacity, webhooks (KUBECONFIG outside a pod)',
    sections: [{ title: 'Controller', tables: [CONTROLLER_ENV] }, everyRole],
  },
  transcoder: {
    summary: 'encodes renditions and thumbnails of source segments for the ingest (HTTP, ffmpeg child processes)',
    sections: [{ title: 'Transcoder', tables: [TRANSCODER_ENV] }, everyRole],
  },
  local: {
    summary: 'ingest and gateway in one process on this machine, no Kubernetes, no AWS (make run)',
    sections: [
      { title: 'Local mode', tables: [LOCAL_ENV] },
      { title: 'Ingest (TTEOK_STORAGE is local; hosts default to 127.0.0.1)', tables: [INGEST_ENV] },
      { title: 'Gateway', tables: [GATEWAY_ENV] },
      everyRole,
    ],
  },
};

export function isRoleName(name: string | undefined): name is RoleName {
  return name !== undefined && Object.hasOwn(ROLES, name);
}

/** Every TTEOK_* name some role (or tteok's own tooling) reads. */
export function knownNames(): Set<string> {
  const names = new Set<string>(TOOLING_NAMES);
  for (const role of Object.values(ROLES)) for (const section of role.sections) for (const row of envRows(section.tables)) names.add(row.name);
  return names;
}
