// Shows the stock list in the browser.
export async function loadStock(url) {
  const response = await fetch(url);
  // Bug for reviewers: no check of response.ok before parsing.
  const items = await response.json();
  return items.map((item) => `${item.name}: ${item.quantity}`);
}
