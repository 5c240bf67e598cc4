import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorBox, Loading, link, useApi, when } from '../ui.jsx';
import { reviewState } from './project.jsx';

const PALETTE = 8;

/** A read-only view of one task: its text with spans highlighted, or its image with boxes. */
export function TaskPage({ projectId, taskId }) {
  const task = useApi(`/projects/${projectId}/tasks/${taskId}`);
  const [choice, setChoice] = useState('0');
  if (task.error) return <ErrorBox error={task.error} what="The task" />;
  if (!task.data) return <Loading what="the task" />;
  const t = task.data;
  const sources = [
    ...(t.annotations || []).map((c, i) => ({ key: 'a' + i, title: `Completion ${c.id} by ${c.completed_by || '?'} (${reviewState(c)})`, result: c.result || [], when: c.updated_at || c.created_at })),
    ...(t.drafts || []).map((c, i) => ({ key: 'd' + i, title: `Draft ${c.id} by ${c.completed_by || '?'}`, result: c.result || [], when: c.updated_at })),
    ...(t.predictions || []).map((p, i) => ({ key: 'p' + i, title: `Prediction ${p.model_version || ''}${typeof p.score === 'number' ? ` (score ${p.score.toFixed(2)})` : ''}`, result: p.result || [], when: p.created_at })),
  ];
  const index = Math.min(Number(choice) || 0, Math.max(0, sources.length - 1));
  const source = sources[index];
  const result = source ? source.result : [];
  const labels = labelOrder(result);
  return (
    <>
      <p><a href={link('projects', projectId, 'tasks')}>← Tasks of project {projectId}</a></p>
      {sources.length ? (
        <div class="field narrow">
          <label for="task-source">Show</label>
          <select id="task-source" value={String(index)} onChange={(e) => setChoice(e.currentTarget.value)}>
            {sources.map((s, i) => <option key={s.key} value={String(i)}>{s.title}</option>)}
          </select>
        </div>
      ) : <p>No completion or prediction yet: the task as imported.</p>}
      {source && source.when ? <p class="muted">Last changed {when(source.when)}</p> : null}
      <Legend labels={labels} />
      {Object.entries(t.data || {}).map(([field, value]) => (
        <section key={field} aria-label={`Field ${field}`} class="task-field">
          <h2>{field}</h2>
          {typeof value === 'string' && value.startsWith(`/api/v1/projects/`) && value.includes('/images/')
            ? <TaskImage path={value} result={result} labels={labels} />
            : <HighlightedText text={String(value)} result={result} labels={labels} />}
        </section>
      ))}
      <Choices result={result} />
      {(t.tags || []).length ? <p>Tags: {t.tags.join(', ')}</p> : null}
    </>
  );
}

function labelOrder(result) {
  const names = [];
  for (const item of result) {
    const value = item.value || {};
    for (const name of value.labels || value.rectanglelabels || []) if (!names.includes(name)) names.push(name);
  }
  return names;
}

function colour(labels, name) {
  return 'lab-' + (Math.max(0, labels.indexOf(name)) % PALETTE);
}

function Legend({ labels }) {
  if (!labels.length) return null;
  return (
    <ul class="legend" aria-label="Labels">
      {labels.map((l) => <li key={l}><mark class={colour(labels, l)}>{l}</mark></li>)}
    </ul>
  );
}

/** The text cut at every span boundary; each piece marked with the labels covering it. */
function HighlightedText({ text, result, labels }) {
  const spans = result
    .filter((r) => r.value && typeof r.value.start === 'number' && typeof r.value.end === 'number' && (r.value.labels || []).length)
    .map((r) => ({ start: r.value.start, end: r.value.end, labels: r.value.labels }));
  if (!spans.length) return <p class="task-text">{text}</p>;
  const cuts = new Set([0, text.length]);
  for (const s of spans) {
    cuts.add(Math.max(0, Math.min(text.length, s.start)));
    cuts.add(Math.max(0, Math.min(text.length, s.end)));
  }
  const points = [...cuts].sort((a, b) => a - b);
  const pieces = [];
  for (let i = 0; i < points.length - 1; i += 1) {
    const [from, to] = [points[i], points[i + 1]];
    const covering = spans.filter((s) => s.start <= from && s.end >= to);
    const names = [...new Set(covering.flatMap((s) => s.labels))];
    const piece = text.slice(from, to);
    const ends = spans.filter((s) => s.end === to);
    if (!names.length) {
      pieces.push(piece);
    } else {
      pieces.push(<mark key={from} class={colour(labels, names[0])} title={names.join(', ')}>{piece}</mark>);
      if (ends.length) {
        const endNames = [...new Set(ends.flatMap((s) => s.labels))];
        pieces.push(<span key={'t' + from} class="span-tag">{endNames.join(', ')}</span>);
      }
    }
  }
  return <p class="task-text" data-testid="highlighted-text">{pieces}</p>;
}

function TaskImage({ path, result, labels }) {
  const [src, setSrc] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let url = null;
    // Images need the token: fetched, then shown from memory (never a URL with a token).
    call('GET', path.replace(/^\/api\/v1/, ''), { as: 'blob' })
      .then((blob) => { url = URL.createObjectURL(blob); setSrc(url); })
      .catch(setError);
    return () => url && URL.revokeObjectURL(url);
  }, [path]);
  const boxes = result.filter((r) => r.value && typeof r.value.x === 'number' && (r.value.rectanglelabels || []).length);
  if (error) return <ErrorBox error={error} what="The image" />;
  if (!src) return <Loading what="the image" />;
  return (
    <figure class="task-image">
      <div class="image-box">
        <img src={src} alt="The task's image" />
        <svg viewBox="0 0 100 100" preserveAspectRatio="none" aria-hidden="true">
          {boxes.map((b, i) => (
            <rect key={i} class={'box ' + colour(labels, b.value.rectanglelabels[0])}
              x={b.value.x} y={b.value.y} width={b.value.width} height={b.value.height} />
          ))}
        </svg>
      </div>
      <figcaption>
        {boxes.length ? `${boxes.length} box${boxes.length === 1 ? '' : 'es'}: ` : 'No boxes.'}
        {boxes.map((b) => `${b.value.rectanglelabels.join('/')}${b.value.text ? ` “${b.value.text}”` : ''}`).join('; ')}
      </figcaption>
    </figure>
  );
}

function Choices({ result }) {
  const choices = result.filter((r) => r.value && Array.isArray(r.value.choices));
  if (!choices.length) return null;
  return (
    <section aria-labelledby="choices-h">
      <h2 id="choices-h">Classes</h2>
      <dl>
        {choices.map((c, i) => [<dt key={'k' + i}>{c.from_name}</dt>, <dd key={'v' + i}>{c.value.choices.join(', ')}</dd>])}
      </dl>
    </section>
  );
}
