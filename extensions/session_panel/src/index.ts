/**
 * AIF Workbench's session panel for JupyterLab 4: one small plugin per job.
 * - `model`: the session's Slurm job (ISessionModel), read from the server extension;
 * - `status`: the status bar item with the walltime countdown;
 * - `panel`: the side panel with the job's details, its log and Stop;
 * - `ending`: the warnings before the end of the walltime, and saving every unsaved document then;
 * - `navigator`: the course navigator, the learner's courses and modules with a progress bar each;
 * - `idleCull` (cull.ts): the warning before an idle cull.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IStatusBar } from '@jupyterlab/statusbar';
import { idleCull } from './cull';
import { EndOfWalltime } from './ending';
import { CourseNavigator } from './navigator';
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

const ending: JupyterFrontEndPlugin<void> = {
  id: 'aifw-session-panel:ending',
  description: 'Warnings before the end of the walltime; every unsaved document saved then.',
  autoStart: true,
  requires: [ISessionModel, IDocumentManager],
  activate: (app: JupyterFrontEnd, session: ISessionModel, docManager: IDocumentManager) => {
    const saver = {
      saveAll: () => app.commands.execute('docmanager:save-all'),
      /** Save each document of the main area that has unsaved changes and may be written (once per file). */
      saveDirty: async (): Promise<number> => {
        const saving = new Map<string, Promise<void>>();
        for (const widget of app.shell.widgets('main')) {
          const context = docManager.contextForWidget(widget);
          if (context && context.model.dirty && context.contentsModel?.writable && !saving.has(context.path)) {
            saving.set(context.path, context.save());
          }
        }
        const results = await Promise.allSettled(saving.values());
        results
          .filter(r => r.status === 'rejected')
          .forEach(r => console.warn('aifw session panel: a save failed:', (r as PromiseRejectedResult).reason));
        return results.filter(r => r.status === 'fulfilled').length;
      }
    };
    const end = new EndOfWalltime(saver);
    // Once the lab is restored, and the answer that came before then too (as in cull.ts).
    session.fetched.connect((_, info) => void app.restored.then(() => end.onAnswer(info)));
    void app.restored.then(() => session.info && end.onAnswer(session.info));
  }
};

const navigator: JupyterFrontEndPlugin<void> = {
  id: 'aifw-session-panel:navigator',
  description: "The course navigator: the learner's courses, their modules and progress; Open opens their own copy.",
  autoStart: true,
  requires: [ILabShell, IDocumentManager],
  activate: (app: JupyterFrontEnd, shell: ILabShell, docManager: IDocumentManager) => {
    const widget = new CourseNavigator(path => Promise.resolve(docManager.openOrReveal(path)));
    shell.add(widget, 'left', { rank: 1010 });
  }
};

export default [model, status, panel, ending, navigator, idleCull];
export * from './session';
