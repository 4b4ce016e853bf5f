/**
 * AIF Workbench's session panel for JupyterLab 4: one small plugin per job.
 * - `model`: the session's Slurm job (ISessionModel), read from the server extension;
 * - `status`: the status bar item with the walltime countdown;
 * - `panel`: the side panel with the job's details, its log and Stop.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IStatusBar } from '@jupyterlab/statusbar';
import { SessionPanel } from './panel';
import { ISessionModel, SessionModel } from './session';
import { SessionStatus } from './statusbar';

const PANEL_ID = 'aifw-session-panel';

const model: JupyterFrontEndPlugin<ISessionModel> = {
  id: 'aifw-session-panel:model',
  description: 'The Slurm job of this session, from the server extension.',
  autoStart: true,
  provides: ISessionModel,
  activate: (): ISessionModel => new SessionModel()
};

const status: JupyterFrontEndPlugin<void> = {
  id: 'aifw-session-panel:status',
  description: 'The job and its walltime left in the status bar.',
  autoStart: true,
  requires: [ISessionModel, IStatusBar],
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd, session: ISessionModel, statusBar: IStatusBar, shell: ILabShell | null) => {
    const item = new SessionStatus(session, () => shell?.activateById(PANEL_ID));
    statusBar.registerStatusItem('aifw-session-panel:status', { item, align: 'left', rank: 100 });
  }
};

const panel: JupyterFrontEndPlugin<void> = {
  id: 'aifw-session-panel:panel',
  description: "The session panel: the job's details, its log and Stop.",
  autoStart: true,
  requires: [ISessionModel, ILabShell],
  activate: (app: JupyterFrontEnd, session: ISessionModel, shell: ILabShell) => {
    shell.add(new SessionPanel(session), 'left', { rank: 1000 });
  }
};

export default [model, status, panel];
export * from './session';
