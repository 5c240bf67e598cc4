// Result views built from the API's JSON: tables and an SVG curve, no chart library.
import { score } from './ui.jsx';

export function PerLabelTable({ metrics }) {
  const rows = Object.entries(metrics.per_label || {});
  return (
    <div class="table-wrap">
      <table class="scores" data-testid="per-label">
        <caption>Precision, recall and F1 per label (test split)</caption>
        <thead>
          <tr><th scope="col">Label</th><th scope="col">Precision</th><th scope="col">Recall</th><th scope="col">F1</th><th scope="col">Support</th></tr>
        </thead>
        <tbody>
          {rows.map(([label, s]) => (
            <tr key={label}><th scope="row">{label}</th><td>{score(s.precision)}</td><td>{score(s.recall)}</td><td>{score(s.f1)}</td><td>{s.support ?? '–'}</td></tr>
          ))}
        </tbody>
        <tfoot>
          {['micro', 'macro'].filter((k) => metrics[k]).map((k) => (
            <tr key={k}><th scope="row">{k}</th><td>{score(metrics[k].precision)}</td><td>{score(metrics[k].recall)}</td><td>{score(metrics[k].f1)}</td><td>–</td></tr>
          ))}
        </tfoot>
      </table>
    </div>
  );
}

/** Rows: the true label; columns: the predicted one. Cells shaded by their share of the row. */
export function ConfusionMatrix({ matrix }) {
  const labels = matrix.labels || [];
  const rows = matrix.matrix || [];
  return (
    <div class="table-wrap">
      <table class="confusion" data-testid="confusion-matrix">
        <caption>Confusion matrix: rows are the true labels, columns the predicted ones</caption>
        <thead>
          <tr><th scope="col">true \ predicted</th>{labels.map((l) => <th scope="col" key={l}>{l}</th>)}</tr>
        </thead>
        <tbody>
          {rows.map((row, i) => {
            const total = row.reduce((a, b) => a + b, 0) || 1;
            return (
              <tr key={labels[i]}>
                <th scope="row">{labels[i]}</th>
                {row.map((value, j) => (
                  <td key={j} class={`cm cm-${Math.min(5, Math.ceil((value / total) * 5))}${i === j ? ' cm-diag' : ''}`}>{value}</td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** Loss and validation score per epoch, per model: an SVG drawn from the run's history. */
export function LearningCurve({ history }) {
  const byModel = new Map();
  for (const point of history) {
    if (typeof point.epoch !== 'number' || typeof point.loss !== 'number') continue;
    const name = point.model || 'model';
    if (!byModel.has(name)) byModel.set(name, []);
    byModel.get(name).push(point);
  }
  if (!byModel.size) return null;
  return (
    <section aria-labelledby="curve-h">
      <h2 id="curve-h">Learning curve</h2>
      {[...byModel.entries()].map(([name, points]) => <Curve key={name} name={name} points={points} />)}
    </section>
  );
}

function Curve({ name, points }) {
  const [w, h, pad] = [560, 220, 36];
  const epochs = points.map((p) => p.epoch);
  const [e0, e1] = [Math.min(...epochs), Math.max(...epochs)];
  const losses = points.map((p) => p.loss);
  const maxLoss = Math.max(...losses, 1e-9);
  const x = (e) => pad + ((e - e0) / Math.max(1e-9, e1 - e0)) * (w - 2 * pad);
  const yLoss = (l) => h - pad - (l / maxLoss) * (h - 2 * pad);
  const yScore = (s) => h - pad - s * (h - 2 * pad);
  const line = (pts) => pts.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join(' ');
  const scored = points.filter((p) => typeof p.val_score === 'number');
  const summary = points.map((p) => `epoch ${p.epoch}: loss ${p.loss.toFixed(3)}${typeof p.val_score === 'number' ? `, validation ${p.val_score.toFixed(3)}` : ''}`).join('; ');
  return (
    <figure class="curve">
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`Learning curve of ${name}: ${summary}`}>
        <line class="axis" x1={pad} y1={h - pad} x2={w - pad} y2={h - pad} />
        <line class="axis" x1={pad} y1={pad} x2={pad} y2={h - pad} />
        <text x={w / 2} y={h - 6} class="axis-label" text-anchor="middle">epoch</text>
        <text x={pad} y={pad - 10} class="axis-label">loss (max {maxLoss.toFixed(2)})</text>
        <text x={w - pad} y={pad - 10} class="axis-label" text-anchor="end">validation score (0–1)</text>
        {epochs.length > 1 ? <path class="loss" d={line(points.map((p) => [x(p.epoch), yLoss(p.loss)]))} /> : null}
        {points.map((p, i) => <circle key={'l' + i} class="loss-dot" cx={x(p.epoch)} cy={yLoss(p.loss)} r={3} />)}
        {scored.length > 1 ? <path class="val" d={line(scored.map((p) => [x(p.epoch), yScore(p.val_score)]))} /> : null}
        {scored.map((p, i) => <circle key={'v' + i} class="val-dot" cx={x(p.epoch)} cy={yScore(p.val_score)} r={3} />)}
      </svg>
      <figcaption>{name}: <span class="key-loss">loss</span> and <span class="key-val">validation score</span> per epoch</figcaption>
    </figure>
  );
}
