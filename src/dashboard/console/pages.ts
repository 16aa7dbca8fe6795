import { databasePage } from "./database-page.js";
import { failuresPage } from "./failures-page.js";
import type { RegisteredPage } from "./page.js";
import { schedulesPage } from "./schedules-page.js";

/** The console's pages, in nav order. Add a page with one line. */
export const consolePages: RegisteredPage[] = [failuresPage, schedulesPage, databasePage];
