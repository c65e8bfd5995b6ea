// Conveyor dashboard, the entry module (`<script type="module">`, no build step): the API
// key, live parts from the job event stream, actions through /v1 and count sampling, one
// module per concern under dashboard/ (see docs/structure.md).
//
// Every request, htmx's and ours, carries `Authorization: Bearer <key>` when a key is kept
// in sessionStorage. Nothing here builds HTML from data: text goes in with textContent.
import { startActions } from "./dashboard/actions.js";
import { startSelection } from "./dashboard/dlq.js";
import { startFilters } from "./dashboard/filters.js";
import { startKeyDialog } from "./dashboard/key.js";
import { startLive } from "./dashboard/live.js";
import { onSwap, startHtmx } from "./dashboard/refresh.js";
import { decorate, startClock } from "./dashboard/times.js";

// module scripts run once the document is parsed (after htmx, a deferred classic script)
startHtmx();
onSwap(decorate);
startKeyDialog();
startSelection();
startFilters();
startActions();
decorate(document);
startClock();
startLive();
