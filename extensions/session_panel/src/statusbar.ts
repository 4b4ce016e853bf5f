/**
 * The status bar item: "Job 123 · 0:42:10 left", counting down each second, in the warning colour in the
 * last minutes (from the site's first warning, 10 by default); "Not in a Slurm job" outside Slurm. A click opens the session panel.
 */
import { Widget } from '@lumino/widgets';
import { formatLeft, ISessionModel, warningSeconds } from './session';

export function statusText(model: ISessionModel): string {
  const info = model.info;
  if (!info) {
    return model.error ? 'Job: no answer' : 'Job …';
  }
  if (!info.in_slurm_job) {
    return 'Not in a Slurm job';
  }
  const left = model.secondsLeft();
  return left === null
    ? `Job ${info.job_id} · no time limit`
    : `Job ${info.job_id} · ${formatLeft(left)} left`;
}

export class SessionStatus extends Widget {
  constructor(model: ISessionModel, onClick: () => void) {
    super();
    this._model = model;
    this.addClass('aifw-SessionStatus');
    this.node.title = 'The Slurm job of this session: click for its details';
    this.node.addEventListener('click', onClick);
    model.changed.connect(this._update, this);
    this._update();
  }

  private _update(): void {
    this.node.textContent = statusText(this._model);
    const left = this._model.secondsLeft();
    this.node.classList.toggle('aifw-mod-warning', left !== null && left <= warningSeconds(this._model.info));
  }

  private _model: ISessionModel;
}
