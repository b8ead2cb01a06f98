// The peer: nginx with the RTMP module (Debian's nginx + libnginx-mod-rtmp),
// writing HLS with 1 s fragments to local disk, as a hand-wired nginx-rtmp
// box does. Installed by the benchmark itself, run on loopback.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../harness/ports.ts';
import { spawnManaged, type ManagedProcess } from '../../harness/process.ts';
import { waitFor } from '../../harness/wait.ts';
import { childPids } from './proc-stats.ts';

export function installNginxRtmp(): void {
  execFileSync('bash', ['test/tools/install-debian-packages.sh', 'nginx-light', 'libnginx-mod-rtmp'], { stdio: 'inherit' });
}

export interface NginxRtmp {
  rtmpPort: number;
  httpPort: number;
  hlsDir: string;
  proc: ManagedProcess;
  workerPids(): number[];
  stop(): Promise<void>;
}

export interface NginxRtmpOptions {
  /** Fragments named after the wall-clock ms at which nginx opened them (bench/lib/pdt-proxy.ts reads it). */
  systemNaming?: boolean;
}

export async function startNginxRtmp(options: NginxRtmpOptions = {}): Promise<NginxRtmp> {
  const dir = mkdtempSync(join(tmpdir(), 'tteok-nginx-'));
  const hlsDir = join(dir, 'hls');
  mkdirSync(hlsDir);
  // nginx's worker runs as an unprivileged user when the master is root.
  chmodSync(dir, 0o755);
  chmodSync(hlsDir, 0o777);
  const rtmpPort = await freePort();
  const httpPort = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:${rtmpPort};
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path ${hlsDir};
      hls_fragment 1s;
      hls_playlist_length 6s;
      hls_continuous on;
      hls_cleanup on;${options.systemNaming ? '\n      hls_fragment_naming system;' : ''}
    }
  }
}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:${httpPort};
    location /hls/ {
      alias ${hlsDir}/;
      add_header Cache-Control no-cache always;
      add_header Access-Control-Allow-Origin * always;
    }
  }
}
`,
  );
  const proc = spawnManaged('nginx', '/usr/sbin/nginx', ['-c', conf, '-p', dir]);
  await waitFor('nginx to listen', () => childPids(proc.child.pid!).length > 0, { timeoutMs: 10_000 });
  return {
    rtmpPort,
    httpPort,
    hlsDir,
    proc,
    workerPids: () => childPids(proc.child.pid!),
    async stop() {
      await proc.stop('SIGQUIT', 5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
