<?php
// The index page of every app in the tenant-density runs.
echo "Hello from ", basename(__DIR__), "\n";
