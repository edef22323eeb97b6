<#
.SYNOPSIS
    Install or upgrade FMW from a built wheel; roll back to the previous version on failure.

.DESCRIPTION
    Layout under -Root (default C:\FMW):

        venvs\fmw-<stamp>\   one virtual environment per deploy (never moved: venvs are not
                             relocatable, their launchers hold absolute paths)
        venv\                a junction to the live one; services and scheduled tasks run
                             venv\Scripts\python.exe -m fmw, so re-pointing it switches versions
        fmw.toml             the configuration (-Config)
        logs\deploy-*.log    a transcript of every deploy

    Steps; everything after building the venv is an `fmw` command, so the logic is tested on
    Linux (tests/ops/test_deploy_script.py):

        1. fmw backup --tag pre-deploy         (with the running version; skipped on first install)
        2. python -m venv + pip install WHEEL  (into venvs\fmw-<stamp>)
        3. fmw service stop                    (the running version)
        4. re-point venv -> the new venv
        5. fmw db upgrade, fmw nginx render --reload, fmw service start, fmw smoke --wait N
        6. on failure in 5: fmw service stop, re-point venv -> the previous venv,
           fmw restore <pre-deploy> --replace --yes --if-schema-changed (only when the
           migration changed the schema), fmw nginx render --reload, fmw service start,
           fmw smoke; exit 1

    Exit code: 0 deployed; 1 failed, the previous version runs again (nothing was switched,
    or it was rolled back); 2 failed and NOT rolled back (first install, or the rollback
    itself failed: read the log).

.EXAMPLE
    deploy.bat -Wheel D:\drop\fmw-0.2.0-py3-none-any.whl -WheelHouse D:\drop\wheels
#>
param(
    [Parameter(Mandatory = $true)][string]$Wheel,
    [string]$Root = "C:\FMW",
    [string]$Config = "",
    [string]$WheelHouse = "",        # offline: every dependency's wheel (pip --no-index)
    [string]$Python = "py",          # launcher or python.exe used to create the venv
    [string]$PythonVersion = "-3.11",
    [int]$SmokeWait = 120,           # seconds the API may take to answer after the start
    [string]$WinSW = "",             # first install: WinSW.exe (else native services, sc.exe)
    [switch]$SkipNginx,
    [int]$KeepVenvs = 2              # the live venv and the one before it
)

Set-StrictMode -Version Latest
$ErrorActionPreference = "Stop"

if (-not $Config) { $Config = Join-Path $Root "fmw.toml" }
$Live = Join-Path $Root "venv"
$Venvs = Join-Path $Root "venvs"
$Stamp = Get-Date -Format "yyyyMMdd-HHmmss"
$Started = (Get-Date).ToUniversalTime().ToString("o")
# The wheel's version (fmw-0.2.0-py3-none-any.whl -> 0.2.0), for the deploy record.
$Version = ((Split-Path $Wheel -Leaf) -split "-")[1]
$Target = Join-Path $Venvs "fmw-$Stamp"
$LogDir = Join-Path $Root "logs"
New-Item -ItemType Directory -Force -Path $LogDir, $Venvs | Out-Null
Start-Transcript -Path (Join-Path $LogDir "deploy-$Stamp.log") -Append | Out-Null

function Invoke-Fmw {
    # Invoke-Fmw VENV ARGS...: run `python -m fmw --config $Config ARGS` of VENV; returns the exit code.
    $venv = $args[0]
    $rest = @($args | Select-Object -Skip 1)
    Write-Host "> fmw $($rest -join ' ')"
    & (Join-Path $venv "Scripts\python.exe") -m fmw --config $Config @rest | Out-Host
    return $LASTEXITCODE
}

function Get-FmwOutput {
    # Get-FmwOutput VENV ARGS...: like Invoke-Fmw, but returns what fmw printed (throws on failure).
    $venv = $args[0]
    $rest = @($args | Select-Object -Skip 1)
    Write-Host "> fmw $($rest -join ' ')"
    $out = & (Join-Path $venv "Scripts\python.exe") -m fmw --config $Config @rest
    if ($LASTEXITCODE -ne 0) { throw "fmw $($rest -join ' ') failed with exit code $LASTEXITCODE" }
    return ($out -join "`n")
}

function Set-Live([string]$To) {
    # Re-point the venv junction (rmdir removes the link only, never the target's files).
    if (Test-Path $Live) { cmd /c rmdir "$Live" | Out-Null }
    New-Item -ItemType Junction -Path $Live -Target $To | Out-Null
    Write-Host "venv -> $To"
}

function Assert-Ok([int]$Code, [string]$What) {
    if ($Code -ne 0) { throw "$What failed (exit code $Code)" }
}

# Which version is live now (none on a first install). A plain folder from an older layout
# is moved into venvs\ so it can be switched back to like any other.
$Previous = $null
if (Test-Path $Live) {
    $item = Get-Item $Live -Force
    if ($item.LinkType -eq "Junction") {
        $Previous = @($item.Target)[0]
    } else {
        $Previous = Join-Path $Venvs "fmw-legacy-$Stamp"
        Move-Item $Live $Previous
        Set-Live $Previous
    }
}

# 1. Pre-deploy backup, taken by the version that wrote the data.
$BackupName = ""
if ($Previous) {
    $made = Get-FmwOutput $Live backup --tag pre-deploy --json
    $BackupName = ($made | ConvertFrom-Json).name
    Write-Host "pre-deploy backup: $BackupName"
}

# 2. The new venv, beside the live one (the services keep running meanwhile).
$venvArgs = @()
if ($PythonVersion) { $venvArgs += $PythonVersion }   # "" when -Python is a python.exe
& $Python @venvArgs -m venv $Target
Assert-Ok $LASTEXITCODE "creating the venv $Target"
$pip = @("-m", "pip", "install", "--disable-pip-version-check")
if ($WheelHouse) { $pip += @("--no-index", "--find-links", $WheelHouse) }
& (Join-Path $Target "Scripts\python.exe") @pip $Wheel
Assert-Ok $LASTEXITCODE "installing $Wheel"

# 3.-5. Switch and check.
try {
    if ($Previous) { Assert-Ok (Invoke-Fmw $Live service stop) "fmw service stop" }
    Set-Live $Target
    Assert-Ok (Invoke-Fmw $Live db upgrade) "fmw db upgrade"
    if (-not $SkipNginx) { Assert-Ok (Invoke-Fmw $Live nginx render --reload) "fmw nginx render" }
    if (-not $Previous) {
        # The services run the junction's python, so later deploys switch them too.
        $LivePython = Join-Path $Live "Scripts\python.exe"
        if ($WinSW) {
            Assert-Ok (Invoke-Fmw $Live service install --backend winsw --winsw $WinSW --python $LivePython --workdir $Root) "fmw service install"
        } else {
            Assert-Ok (Invoke-Fmw $Live service install --python $LivePython --workdir $Root) "fmw service install"
        }
    }
    Assert-Ok (Invoke-Fmw $Live service start) "fmw service start"
    Assert-Ok (Invoke-Fmw $Live smoke --wait $SmokeWait) "fmw smoke"
} catch {
    Write-Host "DEPLOY FAILED: $_"
    $Why = "$_"
    if (-not $Previous) {
        Write-Host "first install: nothing to roll back to; fix the cause and run the deploy again"
        Stop-Transcript | Out-Null
        exit 2
    }
    Write-Host "rolling back to $Previous"
    $rollback = 0
    $null = Invoke-Fmw $Live service stop
    Set-Live $Previous
    $rollback += Invoke-Fmw $Live restore $BackupName --replace --yes --if-schema-changed
    if (-not $SkipNginx) { $rollback += Invoke-Fmw $Live nginx render --reload }
    $rollback += Invoke-Fmw $Live service start
    $rollback += Invoke-Fmw $Live smoke --wait $SmokeWait
    Stop-Transcript | Out-Null
    # The record, by the version that is live again (one older than this feature skips it).
    $null = Invoke-Fmw $Live deploy record --version $Version --started $Started --outcome failed --rolled-back --detail $Why
    if ($rollback -ne 0) { Write-Host "ROLLBACK INCOMPLETE: see the log"; exit 2 }
    Write-Host "rolled back to $Previous; the failed venv stays in $Target for inspection"
    exit 1
}

# 6. Keep the live venv and the one before it; older ones go.
Get-ChildItem $Venvs -Directory | Sort-Object Name -Descending |
    Where-Object { $_.FullName -ne $Target -and $_.FullName -ne $Previous } |
    Select-Object -Skip ([Math]::Max($KeepVenvs - 2, 0)) |
    ForEach-Object { Remove-Item $_.FullName -Recurse -Force -ErrorAction SilentlyContinue }

$null = Invoke-Fmw $Live deploy record --version $Version --started $Started --outcome succeeded
Write-Host "deployed $Wheel into $Target"
Stop-Transcript | Out-Null
exit 0
