/**
 * The course navigator (left side bar): the learner's courses, then their modules — title, goals, minutes,
 * partition and GPUs, the module's launch link — with a progress bar per module (from the hub's progress
 * service, through the server extension's `aifw/courses`), and "Open", which opens the learner's own copy in
 * ~/courses/<course>/<module>/ (copying only what they lack first: never overwriting their work). A course whose
 * completion rule holds for the learner links to their completion record (certificate, PDF, Open Badge).
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M4 6h16v2H4zm0 5h16v2H4zm0 5h10v2H4z"/></svg>';

export const navigatorIcon = new LabIcon({ name: 'aifw-session-panel:courses', svgstr: ICON_SVG });

export interface IModuleProgress {
  module: string;
  checks_passed: number;
  checks_total: number;
  score: number | null;
  maximum: number | null;
  progress: number;
}

export interface INotebookLink {
  name: string;
  path: string;
  exists: boolean;
}

export interface IModuleView {
  id: string;
  title: string;
  goals: string[];
  minutes: number | null;
  partition: string | null;
  gpus: number | null;
  launch_link: string | null;
  notebooks: INotebookLink[];
  progress: IModuleProgress | null;
}

export interface ICourseView {
  id: string;
  title: string;
  modules: IModuleView[];
  /** The learner's completion record ("/services/aifw-progress/completion/<id>"), once the course's rule holds. */
  completion_link?: string | null;
}

export interface INavigatorAnswer {
  courses: ICourseView[];
  progress_error: string | null;
}

/** Opens a file of the learner's home in JupyterLab. */
export type Opener = (path: string) => Promise<unknown>;

function escape(text: string): string {
  const div = document.createElement('div');
  div.textContent = text;
  return div.innerHTML;
}

/** "3 of 8 checks; graded 7/10" — what the bar stands for. */
export function progressText(p: IModuleProgress | null): string {
  if (!p) {
    return 'no progress recorded';
  }
  const graded = p.score !== null && p.maximum !== null ? `; graded ${p.score}/${p.maximum}` : '';
  return `${p.checks_passed} of ${p.checks_total} checks${graded}`;
}

/** The hub's URL of a link relative to the hub ("/hub/spawn?..."), or null outside a hub. */
function hubLink(link: string | null): string | null {
  if (!link) {
    return null;
  }
  const prefix = PageConfig.getOption('hubPrefix'); // e.g. /hub/
  if (!prefix) {
    return null;
  }
  const base = prefix.replace(/hub\/?$/, '');
  return PageConfig.getOption('hubHost') + URLExt.join(base, link);
}

export class CourseNavigator extends Widget {
  constructor(open: Opener, settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {
    super();
    this._open = open;
    this._settings = settings;
    this.id = 'aifw-course-navigator';
    this.title.icon = navigatorIcon;
    this.title.caption = 'Courses';
    this.addClass('aifw-CourseNavigator');
    this.node.innerHTML = '<p>Reading your courses…</p>';
    this.node.addEventListener('click', event => void this._onClick(event));
  }

  /** Read the courses and progress again (each time the panel is shown). */
  async refresh(): Promise<void> {
    const url = URLExt.join(this._settings.baseUrl, 'aifw', 'courses');
    try {
      const response = await ServerConnection.makeRequest(url, {}, this._settings);
      if (!response.ok) {
        throw new Error(`the server answered ${response.status}`);
      }
      this._render((await response.json()) as INavigatorAnswer);
    } catch (err) {
      this.node.innerHTML = `<p>Your courses cannot be read now (${escape(String(err))}). Try again later.</p>`;
    }
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private _render(answer: INavigatorAnswer): void {
    if (!answer.courses.length) {
      this.node.innerHTML = '<p>You are in no course yet.</p>';
      return;
    }
    const note = answer.progress_error
      ? `<p class="aifw-mod-note">Progress is not shown: ${escape(answer.progress_error)}</p>`
      : '';
    this.node.innerHTML =
      '<h2>Courses</h2>' + note + answer.courses.map(c => this._course(c)).join('');
  }

  private _course(course: ICourseView): string {
    const record = hubLink(course.completion_link ?? null);
    return (
      `<section class="aifw-Course" data-course="${escape(course.id)}"><h3>${escape(course.title)}</h3>` +
      (record
        ? `<p class="aifw-Completion"><a href="${escape(record)}" target="_blank" rel="noopener">` +
          'Completion record</a> · you have completed this course</p>'
        : '') +
      course.modules.map(m => this._module(course, m)).join('') +
      '</section>'
    );
  }

  private _module(course: ICourseView, m: IModuleView): string {
    const pct = Math.round(100 * (m.progress?.progress ?? 0));
    const facts = [
      m.minutes !== null ? `${m.minutes} min` : null,
      m.partition ? `partition ${m.partition}` : null,
      m.gpus ? `${m.gpus} GPU${m.gpus > 1 ? 's' : ''}` : m.gpus === 0 ? 'no GPU' : null
    ].filter(Boolean);
    const launch = hubLink(m.launch_link);
    const goals = m.goals.length ? `<ul>${m.goals.map(g => `<li>${escape(g)}</li>`).join('')}</ul>` : '';
    const notebooks = m.notebooks
      .map(
        nb =>
          `<li><button class="jp-Button aifw-Open" data-course="${escape(course.id)}" ` +
          `data-path="${escape(nb.path)}" data-exists="${nb.exists}">Open</button> ${escape(nb.name)}</li>`
      )
      .join('');
    return (
      `<div class="aifw-Module" data-module="${escape(m.id)}">` +
      `<h4>${escape(m.title || m.id)}</h4>` +
      (facts.length ? `<p class="aifw-Module-facts">${escape(facts.join(' · '))}</p>` : '') +
      `<div class="aifw-Progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" ` +
      `aria-valuenow="${pct}" title="${escape(progressText(m.progress))}">` +
      `<div class="aifw-Progress-bar" style="width:${pct}%"></div></div>` +
      `<p class="aifw-Progress-text">${pct}% · ${escape(progressText(m.progress))}</p>` +
      goals +
      (notebooks ? `<ul class="aifw-Notebooks">${notebooks}</ul>` : '') +
      (launch
        ? `<p><a href="${escape(launch)}" target="_blank" rel="noopener">Start a session for this module</a></p>`
        : '') +
      '</div>'
    );
  }

  private async _onClick(event: MouseEvent): Promise<void> {
    const button = (event.target as HTMLElement).closest('button.aifw-Open') as HTMLButtonElement | null;
    if (!button) {
      return;
    }
    const { course, path, exists } = button.dataset;
    if (!course || !path) {
      return;
    }
    if (exists !== 'true') {
      // the learner's copy is missing: copy what they lack (never overwriting anything) before opening
      const url = URLExt.join(this._settings.baseUrl, 'aifw', 'courses', encodeURIComponent(course), 'copy');
      await ServerConnection.makeRequest(url, { method: 'POST' }, this._settings);
    }
    await this._open(path);
  }

  private _open: Opener;
  private _settings: ServerConnection.ISettings;
}
