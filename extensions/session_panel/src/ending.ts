/**
 * The end of the walltime: a JupyterLab notification at each of the site's warnings (10 and 2 minutes
 * before the end by default) with a "Save all" action, and every unsaved document saved when a warning
 * fires and, once Slurm has signalled the end (the server says `ending`), at each answer until the job is
 * killed. Which warning is due is the server's arithmetic (`warning_due_min`), from Slurm's EndTime as
 * re-read, so a changed time limit brings its warnings again.
 */
import { Notification } from '@jupyterlab/apputils';
import { IJobInfo, SessionInfo } from './session';

/** What this plugin needs from JupyterLab: save the unsaved documents (the count saved), run a command. */
export interface ISaver {
  saveDirty(): Promise<number>;
  saveAll(): Promise<unknown>;
}

function minutes(n: number): string {
  return n === 1 ? '1 minute' : `${n} minutes`;
}

function clock(iso: string | null): string {
  return iso ? new Date(iso).toLocaleTimeString() : 'the end of its walltime';
}

/** The text of the warning `due` minutes before the end (a toast shows at most 140 characters). */
export function warningText(info: IJobInfo, due: number): string {
  return (
    `Slurm job ${info.job_id} ends in ${minutes(due)} or less, at ${clock(info.end_time)}. ` +
    'Unsaved work is lost then: open documents were just saved.'
  );
}

export function endingText(info: IJobInfo): string {
  return `Slurm job ${info.job_id} is about to reach its walltime: every open document is saved until the session stops.`;
}

export class EndOfWalltime {
  constructor(saver: ISaver) {
    this._saver = saver;
  }

  /** Called with each answer of the server. */
  async onAnswer(info: SessionInfo): Promise<void> {
    if (!info.in_slurm_job) {
      return;
    }
    const due = info.warning_due_min;
    // Keyed by the end time (as an instant: the environment and Slurm write it in other zones): a changed
    // time limit (EndTime moved) warns again at its own times.
    const key = `${info.job_id}@${info.end_time ? Date.parse(info.end_time) : 'none'}:${due}`;
    let save = false;
    if (due !== null && due !== undefined && !this._shown.has(key)) {
      this._shown.add(key);
      Notification.warning(warningText(info, due), {
        autoClose: false,
        actions: [{ label: 'Save all', caption: 'Save every open document', callback: () => void this._saver.saveAll() }]
      });
      save = true;
    }
    if (info.ending) {
      if (!this._endingShown) {
        this._endingShown = true;
        Notification.warning(endingText(info), { autoClose: false });
      }
      save = true;
    }
    if (save) {
      const saved = await this._saver.saveDirty();
      if (saved) {
        console.info(`aifw session panel: saved ${saved} document(s) before the end of the walltime`);
      }
    }
  }

  private _saver: ISaver;
  private _shown = new Set<string>();
  private _endingShown = false;
}
