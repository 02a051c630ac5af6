// Placeholder until the page lands.
import {h, replace} from '../dom.js';

/** render builds the page into ctx.main. */
export function render(ctx) {
  replace(ctx.main, h('h1', {}, 'access'));
}
