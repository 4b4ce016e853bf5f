/**
 * The warning before an idle cull: the hub stops a session that has been idle for the site's limit
 * (`session.idle_cull_minutes_cpu` / `_gpu`). The server extension says when that would come at the
 * earliest (`idle_cull_at`, from the server's last activity) and when to warn (`idle_cull_warning`: 5
 * minutes before, or half a shorter limit); this plugin shows one JupyterLab notification per coming cull,
 * with a "Save all" action. Activity that moves the cull on (a cell run, a busy kernel, a busy GPU) makes
 * the next warning a new one.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { ISessionModel, SessionInfo } from './session';

/** The idle-cull part of the server's answer (absent from a server without the culling extension). */
export interface IIdleCull {
  /** This session's idle limit in minutes (0: never culled; null: not known). */
  idle_cull_minutes?: number | null;
  idle_cull_at?: string | null;
  idle_cull_in_s?: number | null;
  idle_cull_warning?: boolean;
  /** What counted as activity at the server's last look ("1 kernel busy", "GPU 0 at 80 %"), or null. */
  activity?: string | null;
}

function minutes(seconds: number): string {
  const m = Math.max(1, Math.ceil(seconds / 60));
  return m === 1 ? '1 minute' : `${m} minutes`;
}

/** The warning's text (a toast shows at most 140 characters). */
export function cullText(info: IIdleCull): string {
  const at = info.idle_cull_at ? new Date(info.idle_cull_at).toLocaleTimeString() : 'soon';
  return (
    `Idle session: the hub stops it in about ${minutes(info.idle_cull_in_s ?? 0)} (${at}). ` +
    'Run a cell or open a file to keep it; save your work.'
  );
}

export class IdleCullWarning {
  constructor(saveAll: () => Promise<unknown>) {
    this._saveAll = saveAll;
  }

  /** Called with each answer of the server; returns whether a warning was shown. */
  onAnswer(info: SessionInfo): boolean {
    const cull = info as SessionInfo & IIdleCull;
    if (!info.in_slurm_job || !cull.idle_cull_warning || !cull.idle_cull_at) {
      return false;
    }
    // One warning per coming cull: the same cull time (to the minute) is not warned twice.
    const key = String(Math.floor(Date.parse(cull.idle_cull_at) / 60000));
    if (this._shown.has(key)) {
      return false;
    }
    this._shown.add(key);
    Notification.warning(cullText(cull), {
      autoClose: false,
      actions: [{ label: 'Save all', caption: 'Save every open document', callback: () => void this._saveAll() }]
    });
    return true;
  }

  private _saveAll: () => Promise<unknown>;
  private _shown = new Set<string>();
}

/** The plugin; index.ts lists it beside the others. */
export const idleCull: JupyterFrontEndPlugin<void> = {
  id: 'aifw-session-panel:idle-cull',
  description: 'A warning before the hub stops an idle session.',
  autoStart: true,
  requires: [ISessionModel],
  activate: (app: JupyterFrontEnd, session: ISessionModel) => {
    const warning = new IdleCullWarning(() => app.commands.execute('docmanager:save-all'));
    // Only once the lab is restored: a notification made while JupyterLab still activates its plugins is
    // counted but never shown as a toast. The answer that came before then is taken too (else a cull
    // already near when the lab opens is warned only at the next answer, a minute later).
    session.fetched.connect((_, info) => void app.restored.then(() => warning.onAnswer(info)));
    void app.restored.then(() => session.info && warning.onAnswer(session.info));
  }
};
