@echo off
rem FMW deploy: install or upgrade from a built wheel, rolling back on failure.
rem Usage: deploy.bat -Wheel D:\drop\fmw-0.2.0-py3-none-any.whl [-WheelHouse D:\drop\wheels] [-Root C:\FMW]
rem Every option is a parameter of deploy.ps1 (see the help at its top).
powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0deploy.ps1" %*
exit /b %ERRORLEVEL%
