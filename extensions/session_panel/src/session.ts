/**
 * The session's job as the server extension tells it (GET <base_url>/aifw/session), and the model that
 * every plugin of this extension reads: fetched again when the server says (`next_poll_s`: once a minute,
 * every 5 s near the end of the walltime), counted down each second in between.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { Token } from '@lumino/coreutils';

/** The answer of a server inside a Slurm job. */
export interface IJobInfo {
  in_slurm_job: true;
  job_id: string;
  partition: string | null;
  nodes: string | null;
  cpus: number | null;
  memory_mb: number | null;
  gpus: number;
  project: string | null;
  state: string | null;
  start_time: string | null;
  end_time: string | null;
  time_limit_s: number | null;
  walltime_left_s: number | null;
  /** GPUs allocated × hours since the start; 0 without GPUs, null while the start is not known. */
  gpu_hours: number | null;
  log_url: string | null;
  source: 'slurm' | 'environment';
  notes: string[];
  /** The site's warnings, minutes before the end, largest first. */
  walltime_warnings_min: number[];
  /** Slurm signals the server this many seconds (up to 60 s more) before the end. */
  end_signal_s: number;
  /** The warning whose time has come (the smallest lead at or above the time left), or null. */
  warning_due_min: number | null;
  /** Slurm has signalled that the job is about to reach its walltime. */
  ending: boolean;
  ending_since: string | null;
  /** When to ask again, in seconds. */
  next_poll_s: number;
}

/** The answer of a server that runs outside Slurm. */
export interface INotInJob {
  in_slurm_job: false;
  message: string;
}

export type SessionInfo = IJobInfo | INotInJob;

/** Seconds left below which the walltime shows as a warning, when the server names no warnings. */
export const WARNING_SECONDS = 10 * 60;

/** How often the job is asked for again at most and at least (the server asks Slurm at most every 30 s). */
export const REFETCH_MS = 60 * 1000;
export const FAST_REFETCH_MS = 5 * 1000;

/** Seconds left below which the walltime shows as a warning: from the site's first warning. */
export function warningSeconds(info: SessionInfo | null): number {
  if (info && info.in_slurm_job && info.walltime_warnings_min?.length) {
    return info.walltime_warnings_min[0] * 60;
  }
  return WARNING_SECONDS;
}

/** "0:42:10" for 2530 seconds; "1-02:00:00" past a day. */
export function formatLeft(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
  return days > 0 ? `${days}-${String(h).padStart(2, '0')}${hms.slice(hms.indexOf(':'))}` : hms;
}

/** The session model: what the server said, when, and the walltime left now. */
export interface ISessionModel {
  readonly info: SessionInfo | null;
  readonly error: string | null;
  /** Seconds of walltime left now (counted down from the last answer), or null when not known. */
  secondsLeft(): number | null;
  /** Emitted on each answer and on each second of the countdown. */
  readonly changed: ISignal<ISessionModel, void>;
  /** Emitted on each answer of the server (not on the countdown's seconds). */
  readonly fetched: ISignal<ISessionModel, SessionInfo>;
  refresh(): Promise<void>;
}

export const ISessionModel = new Token<ISessionModel>(
  'aifw-session-panel:model',
  'The Slurm job this JupyterLab session runs in.'
);

export class SessionModel implements ISessionModel {
  constructor(settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {
    this._settings = settings;
    void this._poll();
    this._tickTimer = window.setInterval(() => this._changed.emit(), 1000);
  }

  /** Fetch, then again when the server says (bounded: every 5 to 60 s). */
  private async _poll(): Promise<void> {
    await this.refresh();
    if (this._disposed) {
      return;
    }
    const info = this._info;
    const asked = info && info.in_slurm_job && typeof info.next_poll_s === 'number' ? info.next_poll_s * 1000 : REFETCH_MS;
    const delay = Math.min(REFETCH_MS, Math.max(FAST_REFETCH_MS, asked));
    this._fetchTimer = window.setTimeout(() => void this._poll(), delay);
  }

  get info(): SessionInfo | null {
    return this._info;
  }

  get error(): string | null {
    return this._error;
  }

  get changed(): ISignal<ISessionModel, void> {
    return this._changed;
  }

  get fetched(): ISignal<ISessionModel, SessionInfo> {
    return this._fetched;
  }

  secondsLeft(): number | null {
    const info = this._info;
    if (!info || !info.in_slurm_job || info.walltime_left_s === null) {
      return null;
    }
    const elapsed = (Date.now() - this._fetchedAt) / 1000;
    return Math.max(0, info.walltime_left_s - elapsed);
  }

  async refresh(): Promise<void> {
    const url = URLExt.join(this._settings.baseUrl, 'aifw', 'session');
    try {
      const response = await ServerConnection.makeRequest(url, {}, this._settings);
      if (!response.ok) {
        throw new Error(`the server answered ${response.status} ${response.statusText}`);
      }
      this._info = (await response.json()) as SessionInfo;
      this._fetchedAt = Date.now();
      this._error = null;
      this._fetched.emit(this._info);
    } catch (reason) {
      // Keep the last answer: the countdown goes on from it.
      this._error = `Could not read the session's job: ${(reason as Error).message}`;
      console.warn(this._error);
    }
    this._changed.emit();
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._fetchTimer);
    window.clearInterval(this._tickTimer);
  }

  private _settings: ServerConnection.ISettings;
  private _info: SessionInfo | null = null;
  private _error: string | null = null;
  private _fetchedAt = 0;
  private _fetchTimer = 0;
  private _tickTimer: number;
  private _disposed = false;
  private _changed = new Signal<ISessionModel, void>(this);
  private _fetched = new Signal<ISessionModel, SessionInfo>(this);
}
