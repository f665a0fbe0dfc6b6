// The queue counts from the API, kept live by its event stream.
const app = document.getElementById('app');
const states = ['scheduled', 'pending', 'active', 'retry', 'dead', 'completed', 'cancelled'];

function render(stats) {
  const rows = stats.queues.map((q) =>
    `<tr><td>${q.queue}</td>${states.map((s) => `<td>${q.states[s]}</td>`).join('')}</tr>`);
  app.innerHTML = `<h1>tickq</h1><table><tr><th>queue</th>${states.map((s) => `<th>${s}</th>`).join('')}</tr>${rows.join('')}</table>`;
}

fetch('/api/stats').then((r) => r.json()).then(render);
new EventSource('/api/events').addEventListener('counts', (e) => render(JSON.parse(e.data)));
