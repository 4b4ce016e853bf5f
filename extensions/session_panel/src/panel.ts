/**
 * The session panel (left side bar): the job's id, partition, node(s), CPUs, memory, GPUs, GPU-hours so
 * far, project, start and end, the walltime left, a link to the job's log, and Stop, which ends the server (so the job)
 * and returns to the hub's home page.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import { formatLeft, IJobInfo, ISessionModel, warningSeconds } from './session';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 ' +
  '8 8 0 0 1 0 16zm.5-13H11v6l5.2 3.2.8-1.3-4.5-2.7V7z"/></svg>';

export const sessionIcon = new LabIcon({ name: 'aifw-session-panel:clock', svgstr: ICON_SVG });

function memory(mb: number | null): string {
  if (mb === null) {
    return '—';
  }
  return mb >= 1024 ? `${(mb / 1024).toFixed(mb % 1024 === 0 ? 0 : 1)} GiB` : `${mb} MiB`;
}

/** "1.25" GPU-hours (allocated GPUs × time since the start, as of the last answer); "—" without GPUs. */
export function gpuHours(info: IJobInfo): string {
  if (!info.gpus) {
    return '—';
  }
  return info.gpu_hours === null || info.gpu_hours === undefined ? 'not yet known' : info.gpu_hours.toFixed(2);
}

function when(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/** The hub's home page, or null when the server does not run under JupyterHub. */
export function hubHome(): string | null {
  const prefix = PageConfig.getOption('hubPrefix');
  return prefix ? PageConfig.getOption('hubHost') + URLExt.join(prefix, 'home') : null;
}

export class SessionPanel extends Widget {
  constructor(model: ISessionModel) {
    super();
    this._model = model;
    this.id = 'aifw-session-panel';
    this.title.icon = sessionIcon;
    this.title.caption = 'Slurm job';
    this.addClass('aifw-SessionPanel');
    model.changed.connect(this._update, this);
    this._update();
  }

  private _update(): void {
    const info = this._model.info;
    if (!info) {
      this._render(`<p>${this._model.error ? escape(this._model.error) : 'Reading the job…'}</p>`, null);
      return;
    }
    if (!info.in_slurm_job) {
      this._render(`<h2>Not in a Slurm job</h2><p>${escape(info.message)}</p>`, null);
      return;
    }
    this._render(this._details(info), info);
  }

  private _details(info: IJobInfo): string {
    const left = this._model.secondsLeft();
    const rows: [string, string, string][] = [
      ['job', 'Job', info.job_id],
      ['partition', 'Partition', info.partition ?? '—'],
      ['nodes', 'Node(s)', info.nodes ?? '—'],
      ['cpus', 'CPUs', info.cpus === null ? '—' : String(info.cpus)],
      ['memory', 'Memory', memory(info.memory_mb)],
      ['gpus', 'GPUs', info.gpus ? String(info.gpus) : 'no GPU'],
      ['gpu-hours', 'GPU-hours so far', gpuHours(info)],
      ['project', 'Project', info.project ?? '—'],
      ['start', 'Started', when(info.start_time)],
      ['end', 'Ends', when(info.end_time)],
      ['left', 'Walltime left', left === null ? 'no time limit' : '']
    ];
    const table = rows
      .map(([key, label, value]) => `<tr data-aifw="${key}"><th>${label}</th><td>${escape(value)}</td></tr>`)
      .join('');
    const log = info.log_url
      ? `<p><a class="aifw-SessionPanel-log" href="${escape(info.log_url)}" target="_blank" rel="noopener">The job's log</a></p>`
      : '';
    const notes = info.notes.length
      ? `<ul class="aifw-SessionPanel-notes">${info.notes.map(n => `<li>${escape(n)}</li>`).join('')}</ul>`
      : '';
    return `<h2>Slurm job ${escape(info.job_id)}</h2><table>${table}</table>${log}${notes}`;
  }

  private _render(html: string, info: IJobInfo | null): void {
    // The details are rebuilt only when they change; each second only the countdown's cell is written
    // (a Stop button rebuilt every second could lose a click).
    if (html !== this._last) {
      this._last = html;
      this.node.innerHTML = html;
      if (info) {
        this._addStop(info);
      }
    }
    const left = this._model.secondsLeft();
    const row = this.node.querySelector<HTMLElement>('tr[data-aifw="left"]');
    if (row && left !== null) {
      row.querySelector('td')!.textContent = formatLeft(left);
      row.classList.toggle('aifw-mod-warning', left <= warningSeconds(this._model.info));
    }
  }

  private _addStop(info: IJobInfo): void {
    const stop = document.createElement('button');
    stop.className = 'jp-mod-styled jp-mod-warn aifw-SessionPanel-stop';
    stop.textContent = 'Stop';
    stop.title = 'End this session: the server stops, Slurm ends the job, and you return to the hub';
    stop.addEventListener('click', () => void stopSession(info.job_id));
    this.node.appendChild(stop);
  }

  private _model: ISessionModel;
  private _last = '';
}

/** Ask, then stop the session through the hub (our server extension's aifw/session/stop: the hub cancels
 * the job and knows at once that the server is gone), then go to the hub's home page. */
export async function stopSession(jobId: string): Promise<void> {
  const answer = await showDialog({
    title: 'Stop this session?',
    body: `Slurm job ${jobId} ends. Save your work first: unsaved changes are lost.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop' })]
  });
  if (!answer.button.accept) {
    return;
  }
  const settings = ServerConnection.makeSettings();
  try {
    const reply = await ServerConnection.makeRequest(
      URLExt.join(settings.baseUrl, 'aifw', 'session', 'stop'),
      { method: 'POST' },
      settings
    );
    if (!reply.ok) {
      const said = await reply.json().catch(() => ({}));
      await showErrorMessage('The session was not stopped', said.message || `HTTP ${reply.status}`);
      return;
    }
  } catch (reason) {
    // The server may close the connection as its job ends; the hub page says whether it stopped.
    console.warn('aifw session panel: stop request:', reason);
  }
  const home = hubHome();
  if (home) {
    window.location.assign(home);
  }
}

function escape(text: string): string {
  const div = document.createElement('div');
  div.textContent = text;
  return div.innerHTML.replace(/"/g, '&quot;');
}
