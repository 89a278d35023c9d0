// The Draw page's canvas: freehand strokes with a round pen, undo, redo and clear.
// Pointer events, so a mouse, a pen and a finger all draw; the drawing goes to Python
// as a PNG the moment a stroke ends (no send delay), with the widest pen it used.
// Streamlit calls this function on every rerun; the canvas and its strokes live in
// `pads`, one per mounted component, until Streamlit unmounts it.

const pads = new WeakMap();

function createPad(root) {
  const canvas = root.querySelector("canvas");
  const context = canvas.getContext("2d");
  const buttons = Object.fromEntries([...root.querySelectorAll("button[data-action]")].map((b) => [b.dataset.action, b]));
  const pad = {
    strokes: [],        // [{width, points: [[x, y], ...]}], oldest first
    undone: [],         // states taken back by undo, for redo
    history: [],        // earlier states, for undo (a state is an array of strokes)
    current: null,      // the stroke being drawn
    pointer: null,      // the pointer drawing it
    pen: 20,
    send: () => {},
  };

  const toCanvas = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
            (event.clientY - box.top) * canvas.height / box.height];
  };
  const paintStroke = (stroke, from = 0) => {
    context.strokeStyle = context.fillStyle = "#ffffff";
    context.lineWidth = stroke.width;
    context.lineCap = context.lineJoin = "round";
    const p = stroke.points;
    if (p.length === 1 || from === 0) {           // a dot, or the stroke's start
      context.beginPath();
      context.arc(p[0][0], p[0][1], stroke.width / 2, 0, 2 * Math.PI);
      context.fill();
    }
    context.beginPath();
    context.moveTo(...p[Math.max(from - 1, 0)]);
    for (let i = Math.max(from, 1); i < p.length; i++) context.lineTo(...p[i]);
    context.stroke();
  };
  const repaint = () => {
    context.fillStyle = "#000000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    pad.strokes.forEach((stroke) => paintStroke(stroke));
    buttons.undo.disabled = pad.history.length === 0;
    buttons.redo.disabled = pad.undone.length === 0;
    buttons.clear.disabled = pad.strokes.length === 0;
  };
  const report = () => {
    const empty = pad.strokes.length === 0;
    pad.send({
      png: empty ? null : canvas.toDataURL("image/png"),
      strokes: pad.strokes.length,
      pen: Math.max(0, ...pad.strokes.map((s) => s.width)),
    });
  };
  const change = (strokes) => {               // a new state that undo can take back
    pad.history.push(pad.strokes);
    pad.undone = [];
    pad.strokes = strokes;
  };

  const start = (event) => {
    if (pad.current || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    pad.pointer = event.pointerId;
    pad.current = { width: pad.pen, points: [toCanvas(event)] };
    change([...pad.strokes, pad.current]);
    paintStroke(pad.current);
  };
  const move = (event) => {
    if (!pad.current || event.pointerId !== pad.pointer) return;
    event.preventDefault();
    const from = pad.current.points.length;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    (events.length ? events : [event]).forEach((e) => pad.current.points.push(toCanvas(e)));
    paintStroke(pad.current, from);
  };
  const end = (event) => {
    if (!pad.current || event.pointerId !== pad.pointer) return;
    pad.current = null;
    pad.pointer = null;
    repaint();
    report();
  };
  canvas.addEventListener("pointerdown", start);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  const act = (action) => {
    if (pad.current) return;
    if (action === "undo" && pad.history.length) {
      pad.undone.push(pad.strokes);
      pad.strokes = pad.history.pop();
    } else if (action === "redo" && pad.undone.length) {
      pad.history.push(pad.strokes);
      pad.strokes = pad.undone.pop();
    } else if (action === "clear" && pad.strokes.length) {
      change([]);
    } else {
      return;
    }
    repaint();
    report();
  };
  Object.entries(buttons).forEach(([action, button]) => button.addEventListener("click", () => act(action)));
  const keys = (event) => {
    if (!(event.ctrlKey || event.metaKey)) return;
    const key = event.key.toLowerCase();
    if (key === "z" || key === "y") {
      event.preventDefault();
      act(key === "y" || event.shiftKey ? "redo" : "undo");
    }
  };
  canvas.addEventListener("keydown", keys);

  pad.repaint = repaint;
  pad.destroy = () => canvas.removeEventListener("keydown", keys);
  repaint();
  return pad;
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let pad = pads.get(parentElement);
  if (!pad) {
    pad = createPad(parentElement);
    pads.set(parentElement, pad);
  }
  pad.pen = data.pen;
  pad.send = (drawing) => setStateValue("drawing", drawing);
  const canvas = parentElement.querySelector("canvas");
  if (canvas.width !== data.size) {
    canvas.width = canvas.height = data.size;
    pad.repaint();
  }
  parentElement.querySelector(".pad").style.maxWidth = `${data.size}px`;
  return () => {
    pad.destroy();
    pads.delete(parentElement);
  };
}
